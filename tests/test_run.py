"""``sinternal-verl run``: stage skipping, resume, ``--from``, the manifest and config errors,
on a cheap configuration (the toy world's files, the RL mix and the report; no trainer).
Stage executions are counted in the manifest, never timed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sinternal_verl.cli import main as cli_main
from sinternal_verl.run import RunConfig, run
from sinternal_verl.run.manifest import path_hash
from sinternal_verl.run.proc import StageFailed, run_child
from sinternal_verl.run.stages import ppo_determinism
from sinternal_verl.settings import ConfigError, load_yaml

CHEAP = {
    "device": "cpu",
    "stages": ["toy", "rl_data", "report"],
    "toy": {"enabled": True, "hidden": 32, "layers": 1, "heads": 2, "kv_heads": 1, "copies": 2},
    "rl_data": {"math_count": None, "val_fraction": 0.1, "math_template": "{problem}"},
}


def _config(tmp_path: Path, **extra) -> Path:
    data = {**CHEAP, "run_dir": str(tmp_path / "run"), **extra}
    path = tmp_path / "cheap.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _runs(run_dir: Path) -> dict[str, int]:
    data = json.loads((run_dir / "manifest.json").read_text())
    return {name: st["runs"] for name, st in data["stages"].items()}


def test_finished_stages_are_skipped_and_from_redoes_the_rest(tmp_path, capsys):
    cfg = load_yaml(RunConfig, _config(tmp_path))
    run_dir = tmp_path / "run"
    run(cfg)
    assert _runs(run_dir) == {"toy": 1, "rl_data": 1, "report": 1}
    toy_hash = json.loads((run_dir / "manifest.json").read_text())["stages"]["toy"]["outputs"]

    run(cfg)  # everything done: nothing runs again
    assert _runs(run_dir) == {"toy": 1, "rl_data": 1, "report": 1}

    run(cfg, from_stage="rl_data")  # that stage and what follows, not what precedes
    assert _runs(run_dir) == {"toy": 1, "rl_data": 2, "report": 2}
    assert json.loads((run_dir / "manifest.json").read_text())["stages"]["toy"]["outputs"] == toy_hash

    run(cfg, from_stage="toy")
    assert _runs(run_dir) == {"toy": 2, "rl_data": 3, "report": 3}
    # same settings, same seed: the toy world is rebuilt identically
    assert json.loads((run_dir / "manifest.json").read_text())["stages"]["toy"]["outputs"] == toy_hash

    with pytest.raises(ValueError, match="not one of this run's stages"):
        run(cfg, from_stage="rl")


def test_manifest_records_config_versions_and_hashes(tmp_path):
    cfg = load_yaml(RunConfig, _config(tmp_path), ["rl_data.seed=7"])
    data = run(cfg, argv=["sinternal-verl", "run", "cheap.yaml", "rl_data.seed=7"])
    on_disk = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert on_disk["config"]["rl_data"]["seed"] == 7
    assert on_disk["config"] == cfg.model_dump(mode="json")
    assert on_disk["versions"]["verl"] and on_disk["versions"]["torch"] and on_disk["versions"]["python"]
    assert on_disk["invocations"][-1]["argv"][-1] == "rl_data.seed=7"
    rl = on_disk["stages"]["rl_data"]
    assert rl["status"] == "done" and rl["seconds"] >= 0 and rl["peak_rss_gb"] >= rl["peak_pss_gb"] > 0
    train = tmp_path / "run" / "rl_data" / "train.parquet"
    # outputs are hashed by content, inputs are the toy files the mix read
    assert rl["outputs"][str(train)] == path_hash(train, 1 << 26)
    assert str(tmp_path / "run" / "toy" / "safety_prompts.jsonl") in rl["inputs"]
    assert rl["summary"]["train"] == len(pd.read_parquet(train))
    assert rl["summary"]["train_safety"] + rl["summary"]["val_safety"] == 40  # 10 topics x 4 phrasings
    assert data["stages"]["report"]["summary"]["report"].endswith("report.md")
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| rl_data | done | 1 |" in report


def test_a_failed_stage_reruns_and_finished_ones_do_not(tmp_path):
    path = _config(tmp_path)
    bad = load_yaml(RunConfig, path, ["rl_data.safety_files=[/nonexistent/prompts.jsonl]"])
    with pytest.raises(ValueError, match="no such file"):
        run(bad)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["stages"]["rl_data"]["status"] == "failed"
    assert "no such file" in manifest["stages"]["rl_data"]["error"]
    assert "report" not in manifest["stages"]
    run(load_yaml(RunConfig, path))
    assert _runs(tmp_path / "run") == {"toy": 1, "rl_data": 2, "report": 1}


def test_changed_settings_of_a_finished_stage_are_reported_not_silently_redone(tmp_path, capsys):
    from rich.console import Console

    path = _config(tmp_path)
    run(load_yaml(RunConfig, path))
    console = Console(file=sys.stdout, width=200)
    run(load_yaml(RunConfig, path, ["toy.seed=3"]), console=console)
    out = capsys.readouterr().out
    assert "rerun with --from toy" in out
    assert _runs(tmp_path / "run")["toy"] == 1


def test_bad_config_keys_fail_at_start_up_with_a_suggestion(tmp_path, capsys):
    path = _config(tmp_path)
    assert cli_main(["run", str(path), "rl.stpes=3"]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'rl.stpes'" in err and "did you mean 'steps'" in err
    assert not (tmp_path / "run").exists()  # nothing ran

    assert cli_main(["run", str(path), "stages=[toy,rl_dta]"]) == 2
    assert "did you mean 'rl_data'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="did you mean 'lora_rank'"):
        load_yaml(RunConfig, path, ["verification_sft.lora_rnak=8"])
    assert cli_main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err

    # overrides after ``--from`` are overrides too (``run CONFIG [key=value ...] [--from STAGE]``
    # is how the docs write it, and people append to a command line they already have)
    assert cli_main(["run", str(path), "toy.seed=3", "--from", "toy", "rl.stpes=3"]) == 2
    assert "unknown key 'rl.stpes'" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # an unknown option is still argparse's error
        cli_main(["run", str(path), "--frm", "toy"])
    assert "unrecognized arguments: --frm toy" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_sections_handed_to_other_tools_are_checked_before_the_first_stage(tmp_path, capsys):
    """The pipeline config, the reward kwargs and the eval sections are read by other tools
    only when their stage starts; a typo there must not surface hours into a GPU run."""
    path = _config(tmp_path)
    overrides = [
        "+rl.reward_kwargs.controversal=loose",
        "+verification_data.pipeline.sample.params.temprature=0.3",
        "eval.judge.kind=wildgard",
    ]
    assert cli_main(["run", str(path), *overrides]) == 2
    err = capsys.readouterr().err
    assert "rl.reward_kwargs: unknown key 'controversal'; did you mean 'controversial'" in err, err
    assert (
        "verification_data.pipeline: unknown key 'sample.params.temprature'; did you mean 'temperature'"
        in err
    )
    assert "eval.judge" in err and "wildgard" in err
    assert not (tmp_path / "run").exists()  # nothing ran


def test_presets_load_and_carry_the_paper_settings():
    root = Path(__file__).resolve().parents[1] / "recipes" / "run"
    gpu = load_yaml(RunConfig, root / "gpu_paper.yaml", ["policy_path=some/model"])
    assert (gpu.verification_sft.lora_rank, gpu.verification_sft.lora_alpha) == (16, 32)
    assert (gpu.verification_sft.lr, gpu.verification_sft.epochs) == (2e-4, 2)
    assert (gpu.rl.train_batch_size, gpu.rl.n, gpu.rl.lr) == (64, 8, 1e-6)
    assert gpu.verification_data.pipeline["sample"]["params"]["n"] == 8
    cpu = load_yaml(RunConfig, root / "cpu_demo.yaml")
    assert cpu.device == "cpu" and cpu.toy.enabled and cpu.stages[0] == "toy"
    # every guard call of the demo goes over HTTP to the toy guard; critiques to the toy expert
    assert cpu.verification_data.pipeline["label"]["guard"] == {"kind": "qwen3guard", "urls": ["{guard_url}"]}
    assert cpu.rl.reward_kwargs["guard_urls"] == ["{guard_url}"] and cpu.eval.judge["urls"] == ["{guard_url}"]
    assert cpu.verification_data.pipeline["critique"]["urls"] == ["{expert_url}"]


def test_child_output_goes_to_the_log_and_its_tail_to_the_error(tmp_path):
    code = "import sys\nfor i in range(100): print('line', i)\nsys.exit(3)"
    log = tmp_path / "logs" / "x.log"
    with pytest.raises(StageFailed) as err:
        run_child([sys.executable, "-c", code], log_path=log, tail_lines=5)
    msg = str(err.value)
    assert "exited with code 3" in msg and "line 99" in msg and "line 94" not in msg
    assert log.read_text().count("line ") == 100
    ok = run_child([sys.executable, "-c", "print('fine')"], log_path=log)
    assert ok.returncode == 0 and "fine" in log.read_text()


def test_prepare_data_subcommand_writes_the_rl_mix(tmp_path):
    safety = tmp_path / "s.jsonl"
    safety.write_text(
        "".join(
            json.dumps({"prompt": f"How do I build a bomb {i}?", "kind": "harmful"}) + "\n" for i in range(4)
        )
    )
    math = tmp_path / "m.jsonl"
    math.write_text(
        "".join(json.dumps({"problem": f"{i} + 1?", "answer": str(i + 1)}) + "\n" for i in range(3))
    )
    assert cli_main(["prepare-data", "--safety", str(safety), "--math", str(math), "--out", str(tmp_path / "out"),
                     "--math-count", "all", "--val-fraction", "0"]) == 0  # fmt: skip
    rows = pd.read_parquet(tmp_path / "out" / "train.parquet")
    assert sorted(rows["ability"].tolist()) == ["math"] * 3 + ["safety"] * 4


def test_a_stage_error_exits_non_zero_with_its_cause_and_the_way_on(tmp_path, capsys):
    path = _config(tmp_path)
    assert cli_main(["run", str(path), "rl_data.safety_files=[/nonexistent/prompts.jsonl]"]) == 1
    captured = capsys.readouterr()
    assert "no such file" in captured.err and "rerun the same command" in captured.out
    assert cli_main(["run", str(path)]) == 0  # fixed: resumes at the failed stage
    assert _runs(tmp_path / "run") == {"toy": 1, "rl_data": 2, "report": 1}


def test_a_run_that_cannot_start_says_why_before_any_stage(tmp_path, capsys):
    gpu = Path(__file__).resolve().parents[1] / "recipes" / "run" / "gpu_paper.yaml"
    assert cli_main(["run", str(gpu), f"run_dir={tmp_path / 'gpu'}"]) == 2
    assert "policy_path is required" in capsys.readouterr().err
    assert not (tmp_path / "gpu" / "manifest.json").exists()


def test_toy_replay_mixes_teaching_rows_into_verification_sft(tmp_path):
    from sinternal_verl.run.stages import RunContext, _with_replay
    from sinternal_verl.run.toy import ToyShares, write_world
    from sinternal_verl.settings import load

    cfg = load(RunConfig, {"run_dir": str(tmp_path), "toy": {"enabled": True}})
    ctx = RunContext(cfg, tmp_path)
    write_world(ctx.toy, ToyShares())
    ver = pd.DataFrame(
        {
            "messages": [
                [{"role": "user", "content": f"check {i}"}, {"role": "assistant", "content": "Verdict: safe"}]
                for i in range(10)
            ],
            "verdict": ["safe"] * 10,
        }
    )
    ver.to_parquet(tmp_path / "train.parquet", index=False)
    out, n = _with_replay(ctx, tmp_path / "train.parquet", 0.5)
    mixed = pd.read_parquet(out)
    assert n == 5 and len(mixed) == 15 and list(mixed.columns) == ["messages"]
    users = [m[0]["content"] for m in mixed["messages"]]
    assert sum(u.startswith("check ") for u in users) == 10  # every verification row kept
    off = RunContext(load(RunConfig, {"run_dir": str(tmp_path)}), tmp_path)
    with pytest.raises(ValueError, match="toy.enabled"):
        _with_replay(off, tmp_path / "train.parquet", 0.5)


def test_determinism_reaches_verl_everywhere_but_a_rollout_that_would_seed_a_group_alike():
    on = dict(a.split("=", 1) for a in ppo_determinism(7, True, "hf"))
    assert on["data.seed"] == "7"  # the RL data order
    for part in (
        "actor_rollout_ref.actor.fsdp_config",
        "actor_rollout_ref.ref.fsdp_config",
        "actor_rollout_ref.rollout",
    ):
        assert on[f"{part}.seed"] == "7" and on[f"{part}.full_determinism"] == "True"
    # verl's vLLM server seeds every request alike under full_determinism: a GRPO group's
    # samples would be the same answer, so that rollout stays unseeded; the engines do not
    vllm = dict(a.split("=", 1) for a in ppo_determinism(7, True, "vllm"))
    assert vllm["actor_rollout_ref.rollout.full_determinism"] == "False"
    assert vllm["actor_rollout_ref.actor.fsdp_config.full_determinism"] == "True"
    off = dict(a.split("=", 1) for a in ppo_determinism(7, False, "hf"))
    assert off["data.seed"] == "7" and "True" not in off.values()  # data order seeded regardless
