"""A sparse autoencoder over one hook's activations, in the SAELens layout on disk.

A folder holds ``cfg.json`` (``d_in``, ``d_sae``, ``hook_name``, ``architecture`` or
``activation_fn_str``, ``k`` for TopK, ``apply_b_dec_to_input``) and ``sae_weights.safetensors``
(``W_enc`` [d_in, d_sae], ``b_enc`` [d_sae], ``W_dec`` [d_sae, d_in], ``b_dec`` [d_in], and
``threshold`` [d_sae] for JumpReLU, or ``log_threshold`` as SAELens's training SAEs save it).

The formulas (SAELens's):

    pre  = (x - b_dec * apply_b_dec_to_input) @ W_enc + b_enc
    relu     f = max(pre, 0)
    jumprelu f = max(pre, 0) * (pre > threshold)
    topk     f = max(pre, 0) at the k largest entries of pre, 0 elsewhere
    x_hat = f @ W_dec + b_dec

Anything else (gated SAEs, input normalisation with a stored scale, transcoders) is refused with
a message that names it, never approximated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from analyses.errors import BadInput

ARCHITECTURES = ("relu", "jumprelu", "topk")
CFG, WEIGHTS = "cfg.json", "sae_weights.safetensors"
# SAELens's names for the architectures we compute, by cfg["architecture"] or cfg["activation_fn_str"].
_ALIASES = {"standard": "relu", "relu": "relu", "jumprelu": "jumprelu", "topk": "topk"}


@dataclass
class SAE:
    """The weights (fp32) and what they read. ``k`` for TopK, ``threshold`` for JumpReLU."""

    W_enc: Tensor
    b_enc: Tensor
    W_dec: Tensor
    b_dec: Tensor
    hook_name: str
    architecture: str = "relu"
    k: int | None = None
    threshold: Tensor | None = None
    apply_b_dec_to_input: bool = False
    path: str = ""
    extra: dict[str, Any] | None = None  # cfg.json's other fields, written back as they were

    @property
    def d_in(self) -> int:
        return self.W_enc.shape[0]

    @property
    def d_sae(self) -> int:
        return self.W_enc.shape[1]

    def pre(self, x: Tensor) -> Tensor:
        """Pre-activations [..., d_sae] of activations ``x`` [..., d_in] (computed in fp32)."""
        x = x.float()
        if self.apply_b_dec_to_input:
            x = x - self.b_dec.to(x.device)
        return x @ self.W_enc.to(x.device) + self.b_enc.to(x.device)

    def encode(self, x: Tensor) -> Tensor:
        """Feature activations [..., d_sae]."""
        return self.activate(self.pre(x))

    def activate(self, pre: Tensor) -> Tensor:
        acts = pre.clamp(min=0)
        if self.architecture == "jumprelu":
            return acts * (pre > self.threshold.to(pre.device))
        if self.architecture == "topk":
            top = pre.topk(self.k, dim=-1)
            return torch.zeros_like(pre).scatter(-1, top.indices, top.values.clamp(min=0))
        return acts

    def decode(self, f: Tensor) -> Tensor:
        """The reconstruction [..., d_in] of feature activations ``f``."""
        return f.float() @ self.W_dec.to(f.device) + self.b_dec.to(f.device)

    def to(self, device: torch.device | str) -> SAE:
        """This SAE with its tensors on ``device``: itself when they are there already, else a copy
        made once and kept (a corpus scan on a GPU moves the weights once, not once per batch)."""
        device = torch.device(device)
        if self.W_enc.device == device:
            return self
        moved = self.__dict__.setdefault("_moved", {})
        if device not in moved:
            move = {n: getattr(self, n).to(device) for n in ("W_enc", "b_enc", "W_dec", "b_dec")}
            th = None if self.threshold is None else self.threshold.to(device)
            moved[device] = SAE(**move, hook_name=self.hook_name, architecture=self.architecture, k=self.k,
                                threshold=th, apply_b_dec_to_input=self.apply_b_dec_to_input, path=self.path,
                                extra=self.extra)
        return moved[device]

    def describe(self) -> str:
        arch = f"topk k={self.k}" if self.architecture == "topk" else self.architecture
        return f"{arch} SAE, {self.d_sae} features on {self.hook_name}"


def _fail(path: Path, why: str) -> BadInput:
    return BadInput(f"--sae {path}: {why}")


def load_sae(path: str | Path) -> SAE:
    """The SAE in folder ``path`` (SAELens layout); a BadInput naming what is missing or unsupported."""
    path = Path(path)
    if not path.is_dir():
        raise _fail(path, "no such folder (an SAE is a folder with cfg.json and sae_weights.safetensors)")
    for name in (CFG, WEIGHTS):
        if not (path / name).is_file():
            raise _fail(path, f"no {name} in it (the SAELens layout: cfg.json and sae_weights.safetensors)")
    try:
        cfg = json.loads((path / CFG).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(path, f"cfg.json is not JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise _fail(path, "cfg.json must hold an object")
    arch = _architecture(path, cfg)
    weights = _weights(path)
    missing = [n for n in ("W_enc", "b_enc", "W_dec", "b_dec") if n not in weights]
    if missing:
        raise _fail(path, f"sae_weights.safetensors lacks {', '.join(missing)}")
    threshold = weights.get("threshold")
    if threshold is None and "log_threshold" in weights:
        threshold = weights["log_threshold"].exp()
    if arch == "jumprelu" and threshold is None:
        raise _fail(path, "a JumpReLU SAE needs a threshold (or log_threshold) tensor")
    hook = cfg.get("hook_name")
    if not isinstance(hook, str) or not hook:
        raise _fail(path, "cfg.json names no hook_name (the activation the SAE reads)")
    k = _k(path, cfg) if arch == "topk" else None
    sae = SAE(weights["W_enc"], weights["b_enc"], weights["W_dec"], weights["b_dec"], hook, arch, k, threshold,
              bool(cfg.get("apply_b_dec_to_input", False)), str(path), cfg)
    _check_shapes(path, sae, cfg)
    return sae


def _architecture(path: Path, cfg: dict) -> str:
    raw = str(cfg.get("architecture") or cfg.get("activation_fn_str") or "standard").lower()
    if raw == "standard" and str(cfg.get("activation_fn_str", "relu")).lower() == "topk":
        raw = "topk"  # SAELens before v6: a standard SAE whose activation is TopK
    arch = _ALIASES.get(raw)
    if arch is None:
        raise _fail(path, f"architecture {raw!r} is not supported (supported: standard/relu, jumprelu, topk)")
    norm = cfg.get("normalize_activations")
    if norm not in (None, "none"):
        raise _fail(path, f"normalize_activations {norm!r} is not supported: it rescales inputs by a factor "
                    "the folder does not store (supported: none)")
    return arch


def _k(path: Path, cfg: dict) -> int:
    k = cfg.get("k", (cfg.get("activation_fn_kwargs") or {}).get("k"))
    if not isinstance(k, int) or k < 1:
        raise _fail(path, f"a TopK SAE needs a whole k >= 1 in cfg.json (got {k!r})")
    return k


def _weights(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return {n: t.float() for n, t in load_file(str(path / WEIGHTS)).items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise _fail(path, f"sae_weights.safetensors cannot be read ({e})") from None


def _check_shapes(path: Path, sae: SAE, cfg: dict) -> None:
    d_in, d_sae = sae.W_enc.shape if sae.W_enc.ndim == 2 else (None, None)
    want = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    if sae.threshold is not None:
        want["threshold"] = (d_sae,)
    for name, shape in want.items():
        got = tuple(getattr(sae, name).shape)
        if None in shape or got != shape:
            raise _fail(path, f"{name} has shape {list(got)}; expected {list(s for s in shape if s)} "
                        f"from W_enc [d_in, d_sae]")
    for key, value in (("d_in", d_in), ("d_sae", d_sae)):
        if key in cfg and cfg[key] != value:
            raise _fail(path, f"cfg.json says {key} {cfg[key]} but the weights have {value}")
    if sae.k is not None and sae.k > d_sae:
        raise _fail(path, f"k {sae.k} is more than the {d_sae} features")


def save_sae(sae: SAE, path: str | Path, **cfg: Any) -> Path:
    """Write ``sae`` in the SAELens layout (``cfg``: extra cfg.json fields, e.g. the training report)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {"W_enc": sae.W_enc, "b_enc": sae.b_enc, "W_dec": sae.W_dec, "b_dec": sae.b_dec}
    if sae.threshold is not None:
        tensors["threshold"] = sae.threshold
    save_file({n: t.detach().float().contiguous().cpu() for n, t in tensors.items()}, str(path / WEIGHTS))
    arch = "standard" if sae.architecture == "relu" else sae.architecture
    body = {**(sae.extra or {}), "architecture": arch, "d_in": sae.d_in, "d_sae": sae.d_sae,
            "hook_name": sae.hook_name, "apply_b_dec_to_input": sae.apply_b_dec_to_input,
            "normalize_activations": "none", **({"k": sae.k} if sae.k else {}), **cfg}
    (path / CFG).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path
