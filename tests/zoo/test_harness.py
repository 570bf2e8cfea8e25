"""lm-evaluation-harness: the zoo model type gives what lm-eval's own ``hf`` model gives on the same tiny random
Qwen2 checkpoint — per-sample log-likelihoods (multiple choice and rolling perplexity) within 1e-4, the same greedy
generations and the same metrics — on local task YAMLs over JSONL files; rope_scaling in model_args reaches the
model."""

from __future__ import annotations

import json
import math

import pytest
import torch

lm_eval = pytest.importorskip("lm_eval", reason="the lm-eval adapter is the optional [eval] extra")

CHARS = "abcdefghijklmnopqrstuvwxyz .?:\n0123456789"


def char_tokenizer():
    """A character-level fast tokenizer built offline (no download), with an EOS token."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(CHARS)} | {"<eos>": len(CHARS), "<unk>": len(CHARS) + 1,
                                                   "<pad>": len(CHARS) + 2}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>", pad_token="<pad>")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    root = tmp_path_factory.mktemp("harness")
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(CHARS) + 3, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      eos_token_id=len(CHARS), tie_word_embeddings=False)
    Qwen2ForCausalLM(cfg).save_pretrained(root / "qwen2")
    char_tokenizer().save_pretrained(root / "qwen2")
    docs = [{"question": f"what is {a} plus {b}?", "choices": [str(a + b), str(a + b + 1), str(a * b)], "answer": 0}
            for a, b in [(1, 2), (3, 4), (5, 1), (2, 2), (7, 1), (0, 3)]]
    (root / "mc.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    gen = [{"prompt": f"count: {i} {i + 1}", "target": f" {i + 2}"} for i in range(4)]
    (root / "gen.jsonl").write_text("".join(json.dumps(d) + "\n" for d in gen))
    (root / "tasks").mkdir()
    (root / "tasks" / "mc.yaml").write_text(f"""task: zoo_toy_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / 'mc.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}} answer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
""")
    (root / "tasks" / "gen.yaml").write_text(f"""task: zoo_toy_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / 'gen.jsonl'}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{target}}}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
""")
    (root / "tasks" / "ppl.yaml").write_text(f"""task: zoo_toy_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / 'gen.jsonl'}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{prompt}}}}"
metric_list:
  - metric: word_perplexity
""")
    return root


def evaluate(model, root):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    return simple_evaluate(model=model, tasks=["zoo_toy_mc", "zoo_toy_gen", "zoo_toy_ppl"], log_samples=True,
                           task_manager=TaskManager(include_path=str(root / "tasks")), batch_size=2)


def test_zoo_model_equals_lm_evals_hf_model_sample_by_sample(checkpoint):
    from lm_eval.models.huggingface import HFLM

    from zoo.harness import ZooLM

    theirs = evaluate(HFLM(pretrained=str(checkpoint / "qwen2"), device="cpu", dtype="float32", batch_size=2),
                      checkpoint)
    ours = evaluate(ZooLM(pretrained=str(checkpoint / "qwen2"), batch_size=2), checkpoint)
    for task in ("zoo_toy_mc", "zoo_toy_gen", "zoo_toy_ppl"):
        a, b = theirs["samples"][task], ours["samples"][task]
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            if task == "zoo_toy_gen":
                assert x["resps"] == y["resps"], task
            else:
                for rx, ry in zip(x["resps"], y["resps"]):
                    assert ry[0][0] == pytest.approx(rx[0][0], abs=1e-4) if task == "zoo_toy_mc" else \
                        ry[0] == pytest.approx(rx[0], abs=1e-4)
                    if task == "zoo_toy_mc":
                        assert ry[0][1] == rx[0][1]  # is_greedy
        for metric, value in theirs["results"][task].items():
            if isinstance(value, float) and math.isfinite(value) and "stderr" not in metric:
                assert ours["results"][task][metric] == pytest.approx(value, abs=1e-4), (task, metric)


def test_rope_scaling_in_model_args_reaches_the_model(checkpoint):
    from lm_eval.api.registry import get_model

    import zoo.harness  # noqa: F401  (registers "zoo")

    lm = get_model("zoo").create_from_arg_string(f"pretrained={checkpoint / 'qwen2'},rope_scaling=yarn:4:64")
    want = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}
    assert lm.protocol["rope_scaling"] == want
    assert {k: lm.model.config.rope_scaling[k] for k in want} == want
    ids = torch.randint(0, 40, (1, 200))
    plain = get_model("zoo").create_from_arg_string(f"pretrained={checkpoint / 'qwen2'}")
    with torch.no_grad():  # the scaling changes what the model computes beyond its original window
        assert not torch.allclose(lm.model(ids).logits, plain.model(ids).logits, atol=1e-3)


def test_the_command_line_is_lm_evals_own_with_the_zoo_model(checkpoint, tmp_path):
    import os
    import subprocess
    import sys

    out = tmp_path / "out"
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "zoo.harness", "lm-eval", "--model_args",
                           f"pretrained={checkpoint / 'qwen2'}", "--tasks", "zoo_toy_mc", "--include_path",
                           str(checkpoint / "tasks"), "--output_path", str(out)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    (results,) = out.rglob("results_*.json")
    acc = json.loads(results.read_text())["results"]["zoo_toy_mc"]["acc,none"]
    from zoo.harness import ZooLM

    assert acc == pytest.approx(evaluate(ZooLM(pretrained=str(checkpoint / "qwen2")), checkpoint)["results"]
                                ["zoo_toy_mc"]["acc,none"])
    with pytest.raises(SystemExit, match="usage: python -m zoo.harness lm-eval"):
        from zoo.harness import main

        main(["lmms-eval"])
