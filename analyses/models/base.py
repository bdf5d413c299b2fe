"""The HookedModel interface shared by every architecture family.

An adapter wraps a loaded Hugging Face causal LM in place (no copy of its weights) and re-runs
its forward pass from the modules' own parameters, calling a hook point at every named
activation. Everything above the adapters speaks hook names only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from analyses.errors import BadInput
from analyses.models.hooks import Capture, Hooks, Intervention


@dataclass(frozen=True)
class ModelShape:
    """What analyses need to know about an architecture, independent of the family."""

    family: str
    n_layers: int
    d_model: int
    d_vocab: int
    n_ctx: int | None  # None: no positional limit (Mamba)
    norm: str  # "layernorm" | "rmsnorm"
    n_heads: int = 0
    n_kv_heads: int = 0
    d_head: int = 0
    d_mlp: int = 0
    parallel_attn_mlp: bool = False
    has_pos_embed: bool = False
    norm_offset: float = 0.0  # RMSNorm weight offset: 1.0 where the model multiplies by (1 + w)
    d_inner: int = 0  # Mamba
    d_state: int = 0  # Mamba
    d_conv: int = 0  # Mamba: the causal conv's kernel width (its slices are k = -(d_conv-1)..0)


@dataclass(frozen=True)
class Prefix:
    """Keys and values of positions ``[0, start)`` at each layer, from an earlier run of the same
    prompts: a run given a prefix computes only positions ``start..`` (an edit at position p changes
    only p and later positions, so a patching sweep need not recompute the ones before it).

    ``keys`` / ``values``: layer -> [b0, start, n_kv_heads, d_head] as attention consumes them
    (keys after rotary embedding: ``attn.hook_rot_k`` where the family has it, else
    ``attn.hook_k``; ``attn.hook_v``). A run of ``k * b0`` rows (k copies of the prompts,
    row-major) reuses them for every copy."""

    start: int
    keys: dict[int, Tensor]
    values: dict[int, Tensor]
    # Recurrent families (Mamba): layer -> (the conv's last inputs [b, width-1, d_inner], the SSM
    # state h [b, d_inner, d_state]) after position start-1: all a later position reads of them.
    states: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)


@dataclass
class RunResult:
    """Logits (None when the run stopped early), the captured activations, and the residual
    stream where the run ended (before the final norm)."""

    logits: Tensor | None
    cache: dict[str, Tensor]
    resid: Tensor
    taps: dict[str, Tensor] = field(default_factory=dict)
    prefix: Prefix | None = None  # with ``keep_prefix``: what a run of the next positions continues from


def exec_device(module: nn.Module) -> torch.device:
    """The device a module computes on, also when accelerate has offloaded its weights."""
    hook = getattr(module, "_hf_hook", None)
    if hook is not None and getattr(hook, "execution_device", None) is not None:
        dev = hook.execution_device
        return torch.device(dev if not isinstance(dev, int) else f"cuda:{dev}")
    for sub in module.modules():
        sub_hook = getattr(sub, "_hf_hook", None)
        if sub_hook is not None and getattr(sub_hook, "execution_device", None) is not None:
            return exec_device(sub)
    for p in module.parameters():
        if p.device.type != "meta":
            return p.device
    return torch.device("cpu")


@contextlib.contextmanager
def materialized(*modules: nn.Module) -> Iterator[None]:
    """Within the block, offloaded weights of these modules (and their children) are real tensors
    on their execution device. A no-op for models that accelerate did not dispatch."""
    offloaded = [
        m
        for mod in modules
        for m in mod.modules()
        if getattr(getattr(m, "_hf_hook", None), "offload", False)
    ]
    if not offloaded:
        yield
        return
    from accelerate.utils import align_module_device

    with contextlib.ExitStack() as stack:
        for m in offloaded:
            stack.enter_context(align_module_device(m))
        yield


class HookedModel:
    """A causal LM with named hook points. Subclasses implement one family each."""

    shape: ModelShape
    model: nn.Module
    # Interventions applied before a run's own in every run: the activation edits in force
    # (analyses.edits), so any analysis runs "with edits".
    standing: tuple[Intervention, ...] = ()
    # Passes made so far, in whole-model forwards of one sequence (a run from layer l counts the share
    # of the layers it runs, a run over a suffix its share of the positions) and backward passes:
    # bench/analyses.py compares them with each analysis's floor (analyses.costs).
    forwards: float = 0.0
    backwards: float = 0.0

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        model.eval()
        model.requires_grad_(False)

    # ---- what subclasses provide -------------------------------------------------------------

    def hook_names(self) -> list[str]:
        """Every hook name this model has, in forward order."""
        raise NotImplementedError

    def _embed(self, tokens: Tensor, hooks: Hooks, offset: int = 0) -> Tensor:
        """Embeddings of ``tokens``, the first at position ``offset`` (a run continuing a Prefix)."""
        raise NotImplementedError

    def _block(self, layer: int, x: Tensor, ctx: dict, hooks: Hooks) -> Tensor:
        raise NotImplementedError

    def _context(self, tokens: Tensor, attention_mask: Tensor | None, hooks: Hooks) -> dict:
        """Per-run tensors every block needs (masks, rotary tables)."""
        return {}

    def _with_prefix(self, ctx: dict, prefix: Prefix) -> dict:
        """The per-run context of a run over positions ``prefix.start..`` only."""
        raise BadInput(f"runs over a suffix of the positions are not supported for {self.shape.family}")

    def final_norm_module(self) -> nn.Module:
        raise NotImplementedError

    def unembed_module(self) -> nn.Linear:
        return self.model.lm_head  # every supported HF *ForCausalLM names its head so

    def blocks(self) -> Sequence[nn.Module]:
        raise NotImplementedError

    # ---- running -----------------------------------------------------------------------------

    def run(
        self,
        tokens: Tensor,
        *,
        attention_mask: Tensor | None = None,
        capture: Capture = None,
        interventions: Sequence[Intervention] = (),
        start_at_layer: int = 0,
        resid: Tensor | None = None,
        stop_at_layer: int | None = None,
        grad_names: Sequence[str] = (),
        logit_pos: Tensor | None = None,
        prefix: Prefix | None = None,
        vocab: Tensor | None = None,
        keep_prefix: bool = False,
    ) -> RunResult:
        """Run ``tokens`` [batch, pos] (right-padded where ``attention_mask`` is given).

        ``capture``: names (or a predicate on names) to keep. ``start_at_layer`` with ``resid``
        (the cached ``blocks.{l}.hook_resid_pre``) resumes a run there; ``stop_at_layer`` ends
        before that block and returns no logits. ``logit_pos`` [batch] unembeds only that position
        of each row (logits [batch, 1, vocab]): sweeps need only the last token's logits, and on
        large vocabularies the unembedding costs as much as the layers. Without ``grad_names``
        runs under no_grad.

        ``prefix`` (attention families, with ``start_at_layer``/``resid``): ``resid`` holds only
        positions ``prefix.start..`` and the earlier positions' keys and values come from the
        prefix; every activation (and hook) then covers those positions only, and ``logit_pos``
        counts from ``prefix.start``. With ``stop_at_layer`` (attention families), ``logit_pos``
        makes the last block run compute only that position of each row beyond its keys and
        values: ``resid`` is [b, 1, d], and that block's hooks from the attention pattern on see
        that one position (a patch of a position-local site needs no more). ``vocab`` [v] unembeds only those token ids (logits
        [..., v]): a logit difference needs two columns of the unembedding, not all of them.
        """
        hooks = Hooks(capture, [*self.standing, *interventions], grad_names, detach=not grad_names)
        self._check_names(hooks)
        self._count(tokens, resid, start_at_layer, stop_at_layer, prefix)
        with torch.set_grad_enabled(bool(grad_names)):
            return self._forward(tokens, attention_mask, hooks, start_at_layer, resid, stop_at_layer, logit_pos,
                                 prefix, vocab, keep_prefix)

    def gradients(
        self,
        tokens: Tensor,
        metric: Callable[[Tensor], Tensor],
        names: Sequence[str],
        *,
        attention_mask: Tensor | None = None,
        capture: Capture = None,
        interventions: Sequence[Intervention] = (),
        logit_pos: Tensor | None = None,
        vocab: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        """d metric(logits) / d activation for each of ``names`` in one backward pass.

        ``logit_pos`` / ``vocab`` as in ``run``: a metric of the last token's answer logits needs
        neither the other positions' unembedding nor its backward pass.
        Returns (metric value, gradients by name, captured activations).
        """
        if not names:
            raise BadInput("gradients: name at least one activation")
        result = self.run(
            tokens,
            attention_mask=attention_mask,
            capture=capture,
            interventions=interventions,
            grad_names=names,
            logit_pos=logit_pos,
            vocab=vocab,
        )
        value = metric(result.logits)
        if value.numel() != 1:
            raise BadInput("gradients: the metric must return a scalar")
        taps = [result.taps[n] for n in names]
        grads = torch.autograd.grad(value, taps, allow_unused=True)
        self.backwards += tokens.shape[0]
        out = {n: (torch.zeros_like(t) if g is None else g) for n, t, g in zip(names, taps, grads)}
        return value.detach(), out, {k: v.detach() for k, v in result.cache.items()}

    def _count(self, tokens: Tensor, resid: Tensor | None, start: int, stop: int | None, prefix: Prefix | None) -> None:
        n = self.shape.n_layers
        rows = (resid if resid is not None else tokens).shape[0]
        if prefix is None:
            positions = 1.0
        else:  # a run over the positions after a prefix: resid's, or the tokens' beyond it
            later = resid.shape[1] if resid is not None else tokens.shape[1] - prefix.start
            positions = later / (prefix.start + later)
        self.forwards += rows * ((n if stop is None else stop) - start) / n * positions

    def _check_names(self, hooks: Hooks) -> None:
        unknown = hooks.names_used() - set(self.hook_names())
        if unknown:
            raise BadInput(
                f"unknown hook name(s) for {self.shape.family}: {', '.join(sorted(unknown))}"
                " (see docs/hooks.md for the names each family has)"
            )

    def _forward(
        self,
        tokens: Tensor,
        attention_mask: Tensor | None,
        hooks: Hooks,
        start_at_layer: int,
        resid: Tensor | None,
        stop_at_layer: int | None,
        logit_pos: Tensor | None = None,
        prefix: Prefix | None = None,
        vocab: Tensor | None = None,
        keep_prefix: bool = False,
    ) -> RunResult:
        n = self.shape.n_layers
        stop = n if stop_at_layer is None else stop_at_layer
        if not 0 <= start_at_layer <= stop <= n:
            raise BadInput(f"layers must satisfy 0 <= start ({start_at_layer}) <= stop ({stop}) <= {n}")
        tokens = tokens.to(self.input_device())
        if attention_mask is not None:
            attention_mask = attention_mask.to(tokens.device)
        ctx = self._context(tokens, attention_mask, hooks)
        start = 0 if prefix is None else prefix.start
        hooks.frame(tokens.shape[1], start, None if logit_pos is None else start + logit_pos)
        if prefix is not None:
            if resid is None and start_at_layer:
                raise BadInput("a run with a prefix needs the residual stream of the later positions (resid)")
            ctx = self._with_prefix(ctx, prefix)
        if keep_prefix:
            ctx["state_out"] = {}  # layer -> what the next run's Prefix holds; the blocks fill it
        if start_at_layer == 0 and resid is None:
            x = self._embed(tokens[:, start:], hooks, start) if start else self._embed(tokens, hooks)
        elif resid is None:
            raise BadInput("start_at_layer needs the cached residual stream (resid)")
        else:
            x = resid
        blocks = self.blocks()
        if stop < n:  # asked for explicitly: the block's own hooks accept one position
            narrow = logit_pos is not None and start_at_layer < stop and self._can_narrow(stop - 1, None)
        else:
            narrow = logit_pos is not None and start_at_layer < n and self._can_narrow(n - 1, hooks)
        for layer in range(start_at_layer, stop):
            x = x.to(exec_device(blocks[layer]))
            if narrow and layer == stop - 1:
                ctx = dict(ctx, narrow=logit_pos.to(x.device))
            with materialized(blocks[layer]):
                x = self._block(layer, x, ctx, hooks)
        if stop < n:
            return RunResult(None, hooks.cache, x, hooks.taps)
        if logit_pos is not None and not narrow:
            x = x[torch.arange(x.shape[0], device=x.device), logit_pos.to(x.device)][:, None]
        logits = self._unembed(x, hooks, vocab)
        kept = self._kept_prefix(tokens.shape[1], ctx["state_out"]) if keep_prefix else None
        return RunResult(logits, hooks.cache, x, hooks.taps, kept)

    def _kept_prefix(self, seq: int, state: dict) -> Prefix:
        """The Prefix a run's blocks left in ``state`` (layer -> keys, values over every position)."""
        return Prefix(seq, {layer: kv[0] for layer, kv in state.items()}, {layer: kv[1] for layer, kv in state.items()})

    def _can_narrow(self, layer: int, hooks: Hooks | None) -> bool:
        """Whether the last block run may compute only the ``logit_pos`` position of each row (keys
        and values still cover every position): the family can, and nothing looks at that block's
        activations (``hooks`` None: the caller accepts hooks that see one position)."""
        return False

    def input_device(self) -> torch.device:
        return exec_device(self.blocks()[0])

    def unembed(self, resid: Tensor) -> Tensor:
        """Final norm (its scale recomputed from ``resid``) and unembedding: the logit lens."""
        with torch.no_grad():
            return self._unembed(resid, Hooks())

    def _unembed(self, x: Tensor, hooks: Hooks, vocab: Tensor | None = None) -> Tensor:
        norm, head = self.final_norm_module(), self.unembed_module()
        x = x.to(exec_device(norm))
        with materialized(norm):
            x = self._norm(norm, x, "ln_final", hooks)
        with materialized(head):
            x = x.to(exec_device(head), head.weight.dtype)
            w, b = head.weight, head.bias
            if vocab is not None:
                vocab = vocab.to(w.device)
                w, b = w[vocab], None if b is None else b[vocab]
            logits = nn.functional.linear(x, w, b)
        return hooks("hook_logits", logits) if hooks.active("hook_logits") else logits

    # ---- norms, written out so that their scale is a hook point -------------------------------

    def _norm_stats(self, module: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        """(``x`` in fp32, centred for LayerNorm; its scale ``sqrt(mean(x²) + eps)`` [.., 1])."""
        eps = getattr(module, "eps", None) or getattr(module, "variance_epsilon", None) or 1e-5
        xf = x.float()
        if self.shape.norm == "layernorm":
            xf = xf - xf.mean(-1, keepdim=True)
        return xf, (xf.pow(2).mean(-1, keepdim=True) + eps).sqrt()

    def _norm(self, module: nn.Module, x: Tensor, prefix: str, hooks: Hooks,
              stats: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """LayerNorm / RMSNorm with ``{prefix}.hook_scale`` [.., 1] and ``hook_normalized``.

        Computed in fp32 like HF's RMSNorm; the scale divides, so a frozen scale can be patched in.
        ``stats``: ``_norm_stats(module, x)`` when the caller has them already.
        """
        xf, scale = stats if stats is not None else self._norm_stats(module, x)
        scale = hooks(f"{prefix}.hook_scale", scale)
        normed = hooks(f"{prefix}.hook_normalized", (xf / scale).to(x.dtype))
        w = module.weight
        if self.shape.norm_offset:
            w = w + self.shape.norm_offset
        out = normed * w
        bias = getattr(module, "bias", None)
        return out + bias if bias is not None else out

    # ---- weights, for analyses that read them (DLA, composition) ------------------------------

    def final_norm_params(self) -> tuple[Tensor, Tensor | None]:
        """(effective weight, bias) of the final norm, offset applied."""
        norm = self.final_norm_module()
        with materialized(norm):
            w = norm.weight.detach().clone() + self.shape.norm_offset
            b = getattr(norm, "bias", None)
            return w, None if b is None else b.detach().clone()

    def unembed_device(self) -> torch.device:
        """The device the unembedding computes on (where its weights are read)."""
        return exec_device(self.unembed_module())

    def unembed_rows(self, start: int, stop: int) -> Tensor:
        """W_U rows ``start..stop`` as [k, d_model] (tokens' unembedding vectors, one per row): a
        walk over the vocabulary in chunks never holds all of W_U outside the model."""
        head = self.unembed_module()
        with materialized(head):
            return head.weight.detach()[start:stop].clone()

    def unembed_columns(self, token_ids: Sequence[int]) -> tuple[Tensor, Tensor | None]:
        """(W_U[:, ids] as [d_model, k], b_U[ids] or None) without materialising all of W_U."""
        head = self.unembed_module()
        with materialized(head):
            idx = torch.as_tensor(list(token_ids), device=head.weight.device)
            cols = head.weight.detach()[idx].T.clone()
            b = None if head.bias is None else head.bias.detach()[idx].clone()
        return cols, b
