"""``python -m zoo.plan``: the simulated per-device memory of a training step is within 20% of the peak resident
memory measured for the same step on this CPU, for attention (with and without activation checkpointing), Hyena,
Mamba + HSA and Caduceus; FSDP and sequence parallelism divide what they should; bad --sp input is refused."""

import pytest

from zoo.plan import make_plan, measure_step, parse_sp

CASES = [("lm_passkey", 8192, 2, False), ("lm_passkey", 8192, 2, True), ("hyenadna", 16384, 1, False),
         ("ramba", 2048, 2, False), ("caduceus", 2048, 2, False)]


@pytest.mark.parametrize("config, seq_len, batch, checkpointing", CASES)
def test_estimate_is_within_20_percent_of_the_measured_cpu_peak(config, seq_len, batch, checkpointing):
    plan = make_plan(config, seq_len, batch, checkpointing=checkpointing, precision="32-true")
    measured = measure_step(config, seq_len, batch, checkpointing, [])
    ratio = plan.total / measured
    assert 0.8 <= ratio <= 1.2, f"{config} seq {seq_len}: estimate {plan.total / 2**20:.0f} MiB, measured " \
                                f"{measured / 2**20:.0f} MiB (ratio {ratio:.2f})"
    assert plan.bytes["activations"] > 0.5 * plan.total  # the long sequence, not the weights, is what is measured


def test_fsdp_and_sequence_parallelism_divide_states_and_tokens():
    one = make_plan("lm_passkey", 8192, 1, precision="32-true")
    fsdp = make_plan("lm_passkey", 8192, 1, devices=4, precision="32-true")
    sp = make_plan("lm_passkey", 8192, 1, devices=4, sp="ulysses=2,ring=2", strategy="ddp", precision="32-true")
    assert fsdp.bytes["optimizer"] == -(-one.bytes["optimizer"] // 4)
    assert fsdp.bytes["activations"] == one.bytes["activations"]
    assert sp.tokens_per_device == 2048 and sp.bytes["optimizer"] == one.bytes["optimizer"]
    assert 0.2 <= sp.bytes["activations"] / one.bytes["activations"] <= 0.3
    assert one.activations_with_checkpointing < 0.5 * one.activations_without_checkpointing


def test_bad_sp_and_mesh_are_refused():
    assert parse_sp("ulysses=2,ring=4") == (2, 4)
    with pytest.raises(ValueError, match="expected entries like ulysses=2,ring=4 .* got 'tree=2'"):
        parse_sp("tree=2")
    with pytest.raises(ValueError, match="--devices 6 is not a multiple of the sequence-parallel size 4"):
        make_plan("lm_passkey", 1024, devices=6, sp="ring=4")


def test_abbreviated_options_and_nonsense_numbers_are_errors(capsys):
    from zoo.plan import main

    for argv, message in ((["--config", "lm_passkey", "--param"], "unrecognized arguments: --param"),
                          (["--config", "lm_passkey", "--seq", "64"], "unrecognized arguments: --seq"),
                          (["--config", "lm_passkey", "--seq-len", "0"], "argument --seq-len: must be ≥ 1, got 0")):
        with pytest.raises(SystemExit) as err:
            main(argv)
        assert err.value.code == 2
        assert message in capsys.readouterr().err
