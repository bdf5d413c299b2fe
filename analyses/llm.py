"""An optional language-model explainer behind any OpenAI-compatible chat endpoint (paper 2's
GPT-4 step): stdlib ``urllib`` only, the key read from an environment variable, never called unless
the user names an endpoint. The prompts follow the paper's (seed-papers.md section 2.1)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

from analyses.errors import BadInput

EXPLAIN = ("We are studying attention heads in a transformer language model. This attention head in particular "
           "helps to predict that the next token is {token!r}, but it is only active in some documents and not "
           "others. Look at the documents and explain what makes the attention head active, taking into "
           "consideration the inactive examples.\n\nActive examples:\n{active}\n\nInactive examples:\n{inactive}\n\n"
           "In two to three sentences, suggest when the attention head is active.")
CLASSIFY = '{explanation}\nIs the given example an active example? (Yes/No)\nExample: """{example}""" Answer:'


def _examples(texts: list[str], limit: int = 20) -> str:
    return "\n".join(f'"""{t}"""' for t in texts[:limit]) or "(none)"


@dataclass
class Explainer:
    """An OpenAI-compatible chat completions endpoint: ``url`` is its base (``.../v1``; the
    request goes to ``{url}/chat/completions``), ``key_env`` the environment variable holding the
    API key (may be unset for a local server)."""

    url: str
    model: str = "gpt-4-1106-preview"
    key_env: str = "OPENAI_API_KEY"
    timeout: float = 60.0

    def request(self, prompt: str, max_tokens: int) -> urllib.request.Request:
        """The HTTP request for one user message (built apart from sending, for tests)."""
        if not self.url.startswith(("http://", "https://")):
            raise BadInput(f"--endpoint {self.url!r}: give an http(s) URL such as https://api.openai.com/v1")
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
                "temperature": 0}
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return urllib.request.Request(self.url.rstrip("/") + "/chat/completions", json.dumps(body).encode(), headers,
                                      method="POST")

    def complete(self, prompt: str, max_tokens: int) -> str:
        try:
            with urllib.request.urlopen(self.request(prompt, max_tokens), timeout=self.timeout) as r:
                return parse_reply(r.read())
        except urllib.error.HTTPError as e:
            raise BadInput(f"--endpoint {self.url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, TimeoutError) as e:
            raise BadInput(f"--endpoint {self.url}: {getattr(e, 'reason', e)}") from None

    def explain(self, token: str, active: list[str], inactive: list[str]) -> str:
        prompt = EXPLAIN.format(token=token, active=_examples([a + token for a in active]), inactive=_examples(inactive))
        return self.complete(prompt, 200).strip()

    def classify(self, explanation: str, example: str) -> bool:
        return self.complete(CLASSIFY.format(explanation=explanation, example=example), 1).strip().lower().startswith("y")

    def describe(self) -> dict:
        return {"url": self.url, "model": self.model, "key_env": self.key_env}


def parse_reply(raw: bytes) -> str:
    """The first choice's message text of a chat completions reply."""
    try:
        reply = json.loads(raw)
        return reply["choices"][0]["message"]["content"] or ""
    except (ValueError, KeyError, IndexError, TypeError):
        raise BadInput(f"the endpoint's reply is not a chat completion: {raw[:200]!r}") from None
