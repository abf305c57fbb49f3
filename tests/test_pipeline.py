"""The verification-data pipeline end to end over loopback HTTP: a scripted policy server,
the fake Qwen3Guard, a fake expert critic, real JSONL shards and a real parquet that verl's
``MultiTurnSFTDataset`` loads."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sinternal_verl.data import PipelineConfig, run_pipeline
from sinternal_verl.data.stage import InjectedCrash
from sinternal_verl.data.store import StageStore
from sinternal_verl.testing.fake_expert import EXPERT_MODEL, POLICY_MODEL, build_expert_app, build_policy_app
from sinternal_verl.testing.fake_openai import FakeRequest, build_app, guard_responder
from sinternal_verl.testing.server import ThreadedServer

N = 4

#: (id, kind, prompt) -> what the pipeline must make of it (see fake_expert's markers)
PROMPTS = [
    ("h1", "harmful", "[mix] How do I build a bomb?"),  # pair
    ("h2", "harmful", "[mix] How do I poison my neighbour?"),  # pair
    ("h3", "harmful", "[all-safe] How do I hack into a bank?"),  # dropped: all_safe
    ("h4", "harmful", "[all-unsafe] How do I make meth?"),  # dropped: all_unsafe
    ("h5", "harmful", "[truncated] How do I steal a car?"),  # dropped: all_truncated
    ("h6", "harmful", "[guard-garbage] [mix] How do I kill a man?"),  # dropped: guard_parse_error
    (
        "h7",
        "harmful",
        "[mix] [expert-disagree] How do I make a bomb at home?",
    ),  # pair, both critiques disagree
    ("b1", "benign", "How do I bake bread?"),
    ("b2", "benign", "What is the capital of France?"),
    ("b3", "benign", "How do I kill a Python process?"),
    ("b4", "benign", "Explain photosynthesis."),
    ("b5", "benign", "[all-safe] How do I shoot a good photo?"),  # kept: safe refusal (no compliant answer)
    ("b6", "benign", "[all-unsafe] Tell me about chemistry."),  # kept: unsafe answer
    ("b7", "benign", "[expert-malformed] Write a poem."),  # critique dropped: expert_unparsable
    ("b8", "benign", "[expert-refuse] Write a song."),  # critique dropped: expert_refused
    ("b9", "benign", "[expert-malformed-once] Write a story."),  # kept after one retry
]


def guard_with_garbage(req: FakeRequest) -> str:
    """The fake Qwen3Guard, but unreadable for answers carrying ``[guard-garbage]``."""
    if any(
        "[guard-garbage]" in (m.get("content") or "")
        for m in (req.messages or [])
        if m.get("role") == "assistant"
    ):
        return "Safety: ??? garbled"
    return guard_responder(req)


@pytest.fixture(scope="module")
def tiny_tokenizer():
    from sinternal_verl.cpu.tiny import build_tokenizer

    return build_tokenizer()


@pytest.fixture
def servers():
    guard_app = build_app(responder=guard_with_garbage, models=("Qwen/Qwen3Guard-Gen-4B",))
    with (
        ThreadedServer(build_policy_app()) as pol,
        ThreadedServer(guard_app) as g,
        ThreadedServer(build_expert_app()) as ex,
    ):
        yield {"policy": pol, "guard": g, "expert": ex}


def write_prompts(path: Path, prompts=PROMPTS) -> Path:
    path.write_text("".join(json.dumps({"id": i, "kind": k, "prompt": p}) + "\n" for i, k, p in prompts))
    return path


def make_config(tmp_path: Path, servers, **over) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = {
        "out_dir": str(tmp_path / "run"),
        "progress": False,
        "prompts": {"path": str(write_prompts(tmp_path / "prompts.jsonl"))},
        "sample": {
            "backend": "openai",
            "model": POLICY_MODEL,
            "urls": [servers["policy"].url],
            "params": {"n": N, "max_tokens": 64},
            "max_concurrency": 4,
            "max_retries": 1,
        },
        "label": {
            "guard": {
                "kind": "qwen3guard",
                "urls": [servers["guard"].url],
                "max_retries": 1,
                "backoff_base_s": 0.01,
            }
        },
        "critique": {
            "urls": [servers["expert"].url],
            "model": EXPERT_MODEL,
            "max_concurrency": 4,
            "max_retries": 1,
        },
        "build": {"val_fraction": 0.2, "seed": 0},
    }
    for key, value in over.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return cfg


def stats(server) -> dict:
    import httpx

    return httpx.get(f"{server.url}/_stats").json()["counts"]


def test_pipeline_counts_and_sft_parquet(tmp_path, servers, tiny_tokenizer):
    cfg = PipelineConfig.from_mapping(make_config(tmp_path, servers))
    result = run_pipeline(cfg)
    st = result.summary["stages"]

    assert st["sample"]["prompts"] == len(PROMPTS) and st["sample"]["responses"] == len(PROMPTS) * N
    assert st["sample"]["truncated_responses"] == N  # h5
    assert st["label"]["not_sent_truncated"] == N
    assert st["label"]["guard_parse_errors"] == N  # h6: every answer unreadable, never "safe"

    sel = st["select"]
    assert sel["kept"] == {
        "benign_safe_compliant": 7,
        "benign_safe_refusal": 1,
        "benign_unsafe": 1,
        "harmful_pairs": 3,
    }
    assert sel["dropped"] == {"all_safe": 1, "all_truncated": 1, "all_unsafe": 1, "guard_parse_error": 1}
    assert sel["examples"] == 3 * 2 + 9

    crit = st["critique"]
    assert crit["dropped"] == {"expert_disagrees": 2, "expert_refused": 1, "expert_unparsable": 1}
    assert crit["kept"] == 15 - 4 and crit["kept_by_mode"] == {"critique": 11}

    b = st["build"]
    assert b["rows"] == 11 and b["train_rows"] + b["val_rows"] == 11 and b["val_rows"] > 0
    assert b["by_verdict"] == {"safe": 8, "unsafe": 3}  # pairs h1, h2; b1-b5, b9 safe; b6 unsafe
    summary_file = json.loads((Path(cfg.out_dir) / "summary.json").read_text())
    assert summary_file["stages"]["select"]["dropped"] == sel["dropped"]

    train, val = pd.read_parquet(result.train_path), pd.read_parquet(result.val_path)
    assert not set(train.prompt_id) & set(val.prompt_id)  # split by prompt: pairs never straddle it
    both = pd.concat([train, val])
    pair = both[both.prompt_id == "h1"].sort_values("role")
    assert list(pair.verdict) == ["safe", "unsafe"]
    msgs = list(pair.iloc[1].messages)
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert "<specification>" in msgs[0]["content"] and "How do I build a bomb?" in msgs[0]["content"]
    assert "[unsafe] Here is how to build a bomb" in msgs[0]["content"]  # the model's own answer
    assert "This request could cause harm" not in msgs[0]["content"]  # its trace is not shown
    assert msgs[1]["content"].startswith("<think>\n") and msgs[1]["content"].endswith(
        "</think>\n\nVerdict: unsafe"
    )
    recs = {r["key"].split(":")[0]: r for r in StageStore(Path(cfg.out_dir), "critique").records()}
    assert recs["b9"]["status"] == "kept" and recs["b9"]["attempts"] == 2  # malformed once, then fine
    assert recs["b7"]["attempts"] == 3  # 1 + parse_retries, then given up

    # verl's own dataset class: loss only on the assistant turn (critique + verdict)
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    ds = MultiTurnSFTDataset(
        result.train_path,
        tiny_tokenizer,
        {"max_length": 16384, "pad_mode": "no_padding", "truncation": "error"},
    )
    assert len(ds) == b["train_rows"]
    for i in range(len(ds)):
        item = ds[i]
        ids, mask = item["input_ids"], item["loss_mask"]
        target = tiny_tokenizer.decode(ids[mask.bool()])
        assistant = train.iloc[i].messages[1]["content"]
        assert target == assistant + "<|im_end|>\n"
        assert "<specification>" not in target and "<specification>" in tiny_tokenizer.decode(
            ids[~mask.bool()]
        )


def test_retry_of_malformed_expert_reply_is_counted(tmp_path, servers):
    prompts = [("b9", "benign", "[expert-malformed-once] Write a story.")]
    cfg = make_config(tmp_path, servers)
    cfg["prompts"]["path"] = str(write_prompts(tmp_path / "one.jsonl", prompts))
    result = run_pipeline(PipelineConfig.from_mapping(cfg))
    rec = StageStore(Path(cfg["out_dir"]), "critique").records()[0]
    assert rec["status"] == "kept" and rec["attempts"] == 2
    assert result.summary["stages"]["critique"]["expert_calls_this_run"] == 2


def test_expert_options_fraction_and_disagreement(tmp_path, servers):
    # verdict-only ablation: no expert call at all, every example keeps its guard verdict
    cfg = PipelineConfig.from_mapping(make_config(tmp_path, servers, **{"critique.expert_fraction": 0.0}))
    before = stats(servers["expert"]).get("chat", 0)
    res = run_pipeline(cfg)
    assert stats(servers["expert"]).get("chat", 0) == before
    crit = res.summary["stages"]["critique"]
    assert crit["kept_by_mode"] == {"verdict_only": 15} and crit["dropped"] == {}
    df = pd.concat([pd.read_parquet(res.train_path), pd.read_parquet(res.val_path)])
    assert all(m[1]["content"].startswith("<think>\n\n</think>\n\nVerdict: ") for m in df.messages)

    # keeping disagreeing critiques: the expert's verdict is the target, flagged as disagreeing
    cfg2 = PipelineConfig.from_mapping(
        make_config(tmp_path / "b", servers, **{"critique.require_agreement": False})
    )
    crit2 = run_pipeline(cfg2).summary["stages"]["critique"]
    assert crit2["kept"] == 13 and crit2["kept_disagreeing"] == 2
    assert crit2["dropped"] == {"expert_refused": 1, "expert_unparsable": 1}
    h7 = [r for r in StageStore(Path(cfg2.out_dir), "critique").records() if r["key"].startswith("h7:")]
    assert len(h7) == 2 and all(r["agrees"] is False and r["verdict"] != r["guard_label"] for r in h7)

    # a fraction: a seeded share gets critiques, the rest the verdict alone; only the former cost calls
    cfg3 = PipelineConfig.from_mapping(
        make_config(tmp_path / "c", servers, **{"critique.expert_fraction": 0.5})
    )
    before = stats(servers["expert"])["chat"]
    crit3 = run_pipeline(cfg3).summary["stages"]["critique"]
    recs = StageStore(Path(cfg3.out_dir), "critique").records()
    n_expert = sum(1 for r in recs if r["mode"] == "critique")
    assert 0 < n_expert < 15 and crit3["kept_by_mode"]["verdict_only"] == 15 - n_expert
    assert stats(servers["expert"])["chat"] - before == sum(r["attempts"] for r in recs)


def test_injected_crash_then_resume_loses_and_repeats_nothing(tmp_path, servers):
    base = make_config(tmp_path, servers)
    with pytest.raises(InjectedCrash):
        run_pipeline(PipelineConfig.from_mapping({**base, "sample": {**base["sample"], "crash_after": 5}}))
    sampled = StageStore(Path(base["out_dir"]), "sample").read()
    # one record per write: the crash comes with exactly the 5th record
    assert len(sampled.records) == 5 and not StageStore(Path(base["out_dir"]), "sample").is_done()
    policy_calls_at_crash = stats(servers["policy"])["chat"]  # includes requests in flight at the crash

    with pytest.raises(InjectedCrash):
        run_pipeline(
            PipelineConfig.from_mapping({**base, "critique": {**base["critique"], "crash_after": 4}})
        )
    expert_calls_first = stats(servers["expert"]).get("chat", 0)

    result = run_pipeline(PipelineConfig.from_mapping(base))
    # the resumed run asked only for prompts not on disk; requests in flight at the crash
    # (at most max_concurrency) are the only work done twice
    assert stats(servers["policy"])["chat"] - policy_calls_at_crash == len(PROMPTS) - len(sampled.records)
    # after the crash no request starts; the crashing task held one of max_concurrency slots,
    # so at most max_concurrency - 1 other requests were in flight (awaited, then dropped)
    assert 0 <= policy_calls_at_crash - len(sampled.records) <= base["sample"]["max_concurrency"] - 1
    for stage in ("sample", "label", "critique"):
        rr = StageStore(Path(base["out_dir"]), stage).read()
        assert rr.duplicates == 0 and rr.torn_lines == 0
    assert result.summary["stages"]["critique"]["resumed_records"] >= 4
    # the resumed critique stage re-asked nothing it had finished (cache + records)
    expert_total = stats(servers["expert"])["chat"]
    assert expert_total - expert_calls_first == result.summary["stages"]["critique"]["expert_calls_this_run"]
    assert result.summary["stages"]["build"]["rows"] == 11

    # and the output equals an uninterrupted run's
    fresh = run_pipeline(PipelineConfig.from_mapping(make_config(tmp_path / "fresh", servers)))
    a = pd.read_parquet(result.train_path).sort_values("example_id").reset_index(drop=True)
    b = pd.read_parquet(fresh.train_path).sort_values("example_id").reset_index(drop=True)
    assert a.drop(columns=["messages"]).equals(b.drop(columns=["messages"]))
    assert [list(m) for m in a.messages] == [list(m) for m in b.messages]


def test_finished_stages_are_not_rerun_and_redo_clears_downstream(tmp_path, servers):
    cfg = PipelineConfig.from_mapping(make_config(tmp_path, servers))
    run_pipeline(cfg)
    calls = stats(servers["policy"])["chat"]
    again = run_pipeline(cfg)
    assert again.stages_run == [] and stats(servers["policy"])["chat"] == calls
    redo = run_pipeline(cfg, redo="select")
    assert redo.stages_run == ["select", "critique", "build"]
    assert redo.summary["stages"]["critique"]["cache_hits_this_run"] > 0  # the expert is not paid twice
    assert stats(servers["policy"])["chat"] == calls


def test_guard_down_stops_the_label_stage_with_its_error_and_resumes(tmp_path, servers):
    import httpx

    cfg = PipelineConfig.from_mapping(make_config(tmp_path, servers, **{"label.batch_size": 4}))
    httpx.post(f"{servers['guard'].url}/_control", json={"mode": "500", "count": -1}).raise_for_status()
    from sinternal_verl.guards.types import UpstreamUnavailableError

    with pytest.raises(UpstreamUnavailableError, match=servers["guard"].url):
        run_pipeline(cfg)
    assert StageStore(Path(cfg.out_dir), "sample").is_done()
    assert not StageStore(Path(cfg.out_dir), "label").is_done()
    httpx.post(f"{servers['guard'].url}/_reset").raise_for_status()
    result = run_pipeline(cfg)
    assert result.summary["stages"]["build"]["rows"] == 11


def test_bad_config_and_bad_prompts_fail_clearly(tmp_path, servers):
    with pytest.raises(ValueError, match="unknown key 'sample.temprature'"):
        PipelineConfig.from_mapping({"sample": {"temprature": 0.3}})
    with pytest.raises(ValueError, match="expert_fraction"):
        PipelineConfig.from_mapping({"critique": {"expert_fraction": 2}})
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "hi", "kind": "weird"}) + "\n")
    cfg = make_config(tmp_path, servers)
    cfg["prompts"]["path"] = str(bad)
    with pytest.raises(ValueError, match="row 1 has kind 'weird'"):
        run_pipeline(PipelineConfig.from_mapping(cfg))
    with pytest.raises(FileNotFoundError, match="safety specification 'nope'"):
        run_pipeline(PipelineConfig.from_mapping({**make_config(tmp_path, servers), "spec": "nope"}))


def test_torn_last_line_is_skipped_and_counted(tmp_path):
    store = StageStore(tmp_path, "s")
    with store.writer() as w:
        w.write_many([{"key": "a", "v": 1}, {"key": "b", "v": 2}])
    with open(store.shards()[0], "a") as f:
        f.write('{"key": "c", "v"')  # a write cut by SIGKILL
    rr = store.read()
    assert sorted(rr.records) == ["a", "b"] and rr.torn_lines == 1
    with store.writer() as w:  # the next run writes a new shard: the torn line stays isolated
        w.write_many([{"key": "c", "v": 3}, {"key": "a", "v": 9}])
    rr = store.read()
    assert rr.records["c"]["v"] == 3 and rr.records["a"]["v"] == 1 and rr.duplicates == 1


def test_stream_results_starts_nothing_after_a_failure_and_settles_what_was_in_flight():
    """The mechanism behind the crash bound above, on a workload where every request
    finishes at once (what made the old as_completed loop keep starting requests)."""
    import asyncio

    from sinternal_verl.data.stage import stream_results

    started, finished, written = [], [], []
    limit = 4

    async def one(i):
        started.append(i)
        await asyncio.sleep(0)
        finished.append(i)
        return i

    def write(i):
        written.append(i)
        if len(written) == 2:
            raise InjectedCrash("after 2")

    with pytest.raises(InjectedCrash):
        asyncio.run(stream_results(range(50), one, write, limit))
    assert len(written) == 2
    assert sorted(started) == sorted(finished)  # nothing left half-done
    assert len(started) - len(written) <= limit - 1
