"""The zoo's language models as a model type of EleutherAI's lm-evaluation-harness (optional extra ``[eval]``).

``python -m zoo.harness lm-eval --model_args pretrained=PATH --tasks TASKS [any lm-eval option]`` runs lm-eval's own
command line with ``--model zoo``; from Python, ``lm_eval.simple_evaluate(model="zoo", model_args="pretrained=PATH")``
after ``import zoo.harness``, or ``simple_evaluate(model=ZooLM(pretrained=PATH))``.

:class:`ZooLM` follows lm-eval's ``TemplateLM`` (so contexts and continuations are split and encoded exactly as for
its ``hf`` model) over any checkpoint ``zoo.load_pretrained`` reads that is a :class:`zoo.lm.CausalLM`, with the
checkpoint's tokenizer: a Hugging Face tokenizer from the checkpoint directory, else the zoo's byte tokenizer for
the zoo's own byte-level runs. ``model_args`` also take ``rope_scaling`` (``rope_scaling=yarn:4:512`` in lm-eval's
comma-separated form, i.e. type, factor, original_max_position_embeddings; or a JSON object in JSON model_args),
``max_length`` and ``batch_size``; every setting the run used is logged once and kept in ``ZooLM.protocol``.
"""

from __future__ import annotations

import json
import logging
import sys

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def _require_lm_eval():
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise ImportError("the lm-eval adapter needs lm-evaluation-harness: pip install 'zoo[eval]'") from None


_require_lm_eval()

from lm_eval.api.model import TemplateLM  # noqa: E402
from lm_eval.api.registry import register_model  # noqa: E402
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window  # noqa: E402

from .data import left_padded  # noqa: E402


class _ByteTokenizer:
    """The zoo's byte tokenizer behind the few calls this adapter makes."""

    def __init__(self):
        from .tokenizers import ByteTokenizer

        self.inner = ByteTokenizer()
        self.eos_token_id = self.inner.eos_token_id
        self.bos_token_id = getattr(self.inner, "bos_token_id", None)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(self.inner.encode(text))

    def decode(self, ids) -> str:
        return self.inner.decode(list(ids))


def load_tokenizer(path: str):
    from pathlib import Path

    directory = Path(path) if Path(path).is_dir() else None
    if directory is not None and any((directory / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(directory)
    return _ByteTokenizer()


def parse_rope_scaling(value: str | dict) -> dict:
    """``rope_scaling`` from model_args: a dict (JSON model_args, or Python), a JSON object string, or the compact
    ``type:factor[:original_max_position_embeddings]`` that survives lm-eval's comma-separated model_args
    (``rope_scaling=yarn:4:512``)."""
    if isinstance(value, dict):
        return dict(value)
    text = str(value).strip()
    if text.startswith("{"):
        return json.loads(text)
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise ValueError(f"rope_scaling={text!r}: expected type:factor[:original_max_position_embeddings] or JSON")
    out = {"type": parts[0], "factor": float(parts[1])}
    if len(parts) == 3:
        out["original_max_position_embeddings"] = int(parts[2])
    return out


@register_model("zoo")
class ZooLM(TemplateLM):
    def __init__(self, pretrained: str, batch_size: int | str = 1, max_length: int | None = None,
                 rope_scaling: str | dict | None = None, device: str = "cpu", add_bos_token: bool = False,
                 **kwargs):
        super().__init__()
        from .lm import CausalLM
        from .loading import load_pretrained

        overrides = {}
        if rope_scaling:
            overrides["rope_scaling"] = parse_rope_scaling(rope_scaling)
        self.model = load_pretrained(pretrained, device=device, **overrides)
        if not isinstance(self.model, CausalLM):
            raise ValueError(f"pretrained={pretrained!r} holds a {type(self.model).__name__}; the lm-eval adapter "
                             "serves causal LMs (video and audio models go through lmms-eval)")
        self.tokenizer = load_tokenizer(pretrained)
        self.batch_size = int(batch_size) if str(batch_size) != "auto" else 1
        self._max_length = int(max_length) if max_length else self.model.config.max_position_embeddings
        self.add_bos_token = bool(add_bos_token)
        self._device = torch.device(device)
        self.protocol = {"pretrained": str(pretrained), "rope_scaling": overrides.get("rope_scaling"),
                         "max_length": self._max_length, "batch_size": self.batch_size,
                         "tokenizer": type(self.tokenizer).__name__}
        if kwargs:
            log.warning("zoo lm-eval model: ignored model_args %s", sorted(kwargs))
        log.info("zoo lm-eval model: %s", self.protocol)

    # ---- what TemplateLM needs ------------------------------------------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        bos = getattr(self.tokenizer, "bos_token_id", None)
        return bos if bos is not None else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, left_truncate_len=None, **kwargs):
        special = self.add_bos_token if add_special_tokens is None else add_special_tokens
        ids = list(self.tokenizer.encode(string, add_special_tokens=special))
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def tok_decode(self, ids) -> str:
        return self.tokenizer.decode(ids)

    def _score(self, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
        """(context ids, continuation ids) → (summed log-probability of the continuation, whether it is greedy);
        inputs cut to the last ``max_length`` tokens as lm-eval's ``hf`` model does, run in left-padded batches."""
        out = []
        for start in range(0, len(pairs), self.batch_size):
            chunk = pairs[start:start + self.batch_size]
            ids, mask = left_padded([(ctx + cont)[-(self.max_length + 1):][:-1] for ctx, cont in chunk], pad=0)
            width = ids.shape[1]
            with torch.no_grad():
                logits = self.model(ids.to(self._device), attention_mask=mask.to(self._device)).logits.float()
            for i, (_, cont) in enumerate(chunk):
                logp = F.log_softmax(logits[i, width - len(cont):], -1)
                target = torch.tensor(cont, device=logp.device)
                out.append((float(logp.gather(-1, target[:, None]).sum()), bool((logp.argmax(-1) == target).all())))
        return out

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs):
        results = self._score([(ctx, cont) for _, ctx, cont in requests])
        for (key, _, _), result in zip(requests, results):
            if key is not None:
                self.cache_hook.add_partial("loglikelihood", key, result)
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        totals = []
        for (string,) in [r.args for r in requests]:
            windows = [make_disjoint_window(w) for w in get_rolling_token_windows(
                token_list=self.tok_encode(string), prefix_token=self.prefix_token_id, max_seq_len=self.max_length,
                context_len=1)]
            totals.append(sum(ll for ll, _ in self._score(windows)))
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy (or sampled, with ``do_sample``) continuations, cut at the first of ``until``."""
        out = []
        for context, gen_kwargs in [r.args for r in requests]:
            kwargs = dict(gen_kwargs)
            until = kwargs.pop("until", None) or []
            until = [until] if isinstance(until, str) else list(until)
            max_new = int(kwargs.pop("max_gen_toks", 256))
            do_sample = bool(kwargs.pop("do_sample", False))
            temperature = float(kwargs.pop("temperature", 1.0) or 1.0)
            ids = self.tok_encode(context, left_truncate_len=self.max_length - max_new)
            prompt = torch.tensor([ids], device=self._device)
            with torch.no_grad():
                full = self.model.generate(prompt, max_new_tokens=max_new, do_sample=do_sample and temperature > 0,
                                           temperature=temperature, eos_token_id=self.eot_token_id)
            text = self.tok_decode(full[0, len(ids):].tolist())
            for stop in until:
                if stop and stop in text:
                    text = text[:text.index(stop)]
            out.append(text)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
        return out


def main(argv: list[str] | None = None) -> None:
    """``python -m zoo.harness lm-eval [lm-eval's arguments]``: lm-eval's CLI with ``--model zoo``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] != "lm-eval":
        raise SystemExit("usage: python -m zoo.harness lm-eval --model_args pretrained=PATH --tasks TASKS [...]")
    from lm_eval.__main__ import cli_evaluate

    rest = argv[1:]
    if "--model" not in rest:
        rest = ["--model", "zoo", *rest]
    if "--device" not in rest:  # lm-eval's default is cuda; a CPU machine runs on the CPU, and says so
        device = "cuda" if torch.cuda.is_available() else "cpu"
        log.warning("zoo.harness: --device not given; using %s", device)
        rest = [*rest, "--device", device]
    if rest and rest[0] not in ("run", "ls", "validate"):  # lm-eval 0.4.13's subcommands
        rest = ["run", *rest]
    sys.argv = ["lm-eval", *rest]
    cli_evaluate()


if __name__ == "__main__":
    main()
