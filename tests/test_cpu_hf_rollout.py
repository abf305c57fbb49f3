"""The transformers rollout server: coalesces concurrent requests into one padded generate,
honours verl's sampling parameters, returns log-probs matching a forward pass, takes weights."""

from __future__ import annotations

import asyncio
import collections

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from transformers import AutoModelForCausalLM

from sinternal_verl.cpu.hf_rollout import (
    GenerationRequest,
    HFGenerator,
    HFRolloutOptions,
    HFRolloutServer,
    SamplingSettings,
    parse_sampling_params,
    parse_seed,
)
from sinternal_verl.cpu.tiny import build_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "m")


def _server(model_dir, rollout: dict | None = None, **hf) -> HFRolloutServer:
    rollout = OmegaConf.create(
        {"name": "hf", "prompt_length": 32, "response_length": 8, "max_model_len": None,
         "engine_kwargs": {"hf": {"batch_wait_s": 0.2, **hf}}, **(rollout or {})}
    )  # fmt: skip
    model = OmegaConf.create({"path": str(model_dir)})
    return HFRolloutServer(config=rollout, model_config=model)


async def test_concurrent_requests_coalesce_and_logprobs_match(model_dir):
    srv = _server(model_dir)
    greedy = dict(temperature=0, top_p=1.0, top_k=-1, repetition_penalty=1.0, logprobs=True)
    prompts = [[1, 10, 20, 30], [1, 40], [1, 50, 60], [1, 70, 80, 90, 100]]
    outs = await asyncio.gather(
        *[
            srv.generate(prompt_ids=p, sampling_params=dict(greedy), request_id=str(i))
            for i, p in enumerate(prompts)
        ]
    )
    assert srv.stats["requests"] == 4 and srv.stats["generate_calls"] == 1  # one padded batch
    ref = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    for p, out in zip(prompts, outs):
        assert 1 <= len(out.token_ids) <= 8 and len(out.log_probs) == len(out.token_ids)
        assert out.stop_reason == "completed" and "global_steps" in out.extra_fields
        # the same tokens and log-probs as an unpadded forward pass of the reference model
        seq = torch.tensor([p + out.token_ids])
        with torch.no_grad():
            logits = ref(seq).logits[0, len(p) - 1 : -1]
        lp = torch.log_softmax(logits, -1).gather(-1, torch.tensor(out.token_ids).unsqueeze(-1)).squeeze(-1)
        assert logits.argmax(-1).tolist() == out.token_ids
        assert torch.allclose(lp, torch.tensor(out.log_probs), atol=1e-4)


async def test_sampling_params_honoured(model_dir):
    srv = _server(model_dir)
    out = await srv.generate(
        prompt_ids=[1, 2, 3],
        sampling_params={"temperature": 0, "max_tokens": 3, "ignore_eos": True},
        request_id="a",
    )
    assert len(out.token_ids) == 3 and out.log_probs is None  # logprobs not asked
    # temperature scales the returned log-probs (vLLM processed_logprobs); top_k=1 forces the argmax
    hot = await srv.generate(
        prompt_ids=[1, 2, 3],
        sampling_params={
            "temperature": 2.0,
            "top_k": 1,
            "max_tokens": 3,
            "ignore_eos": True,
            "logprobs": True,
        },
        request_id="b",
    )
    assert hot.token_ids == out.token_ids
    ref = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    with torch.no_grad():
        logits = ref(torch.tensor([[1, 2, 3] + hot.token_ids])).logits[0, 2:-1]
    lp = torch.log_softmax(logits / 2.0, -1).gather(-1, torch.tensor(hot.token_ids).unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(lp, torch.tensor(hot.log_probs), atol=1e-4)
    # sampling with different seeds of the global RNG gives different continuations at high temperature
    torch.manual_seed(0)
    s1 = await srv.generate(
        prompt_ids=[1, 2, 3],
        sampling_params={"temperature": 5.0, "max_tokens": 8, "ignore_eos": True},
        request_id="c",
    )
    torch.manual_seed(1)
    s2 = await srv.generate(
        prompt_ids=[1, 2, 3],
        sampling_params={"temperature": 5.0, "max_tokens": 8, "ignore_eos": True},
        request_id="d",
    )
    assert s1.token_ids != s2.token_ids
    # default max tokens = response_length
    full = await srv.generate(
        prompt_ids=[1, 2, 3], sampling_params={"temperature": 0, "ignore_eos": True}, request_id="e"
    )
    assert len(full.token_ids) == 8


async def test_a_seeded_request_samples_the_same_whatever_it_is_batched_with(model_dir):
    # verl's rollout batches whatever arrives within a window, so a request's batch mates
    # depend on timing; with one global generator its sample did too
    srv = _server(model_dir)
    hot = {"temperature": 3.0, "max_tokens": 8, "ignore_eos": True, "logprobs": True}
    alone = await srv.generate(prompt_ids=[1, 2, 3], sampling_params={**hot, "seed": 7}, request_id="a")
    others = [[1, 40], [1, 50, 60, 70, 80], [1, 9]]
    batched, *_ = await asyncio.gather(
        srv.generate(prompt_ids=[1, 2, 3], sampling_params={**hot, "seed": 7}, request_id="b"),
        *[
            srv.generate(prompt_ids=p, sampling_params={**hot, "seed": i}, request_id=str(i))
            for i, p in enumerate(others)
        ],
    )
    assert srv.stats["generate_calls"] == 2  # alone, then one padded batch of four
    assert batched.token_ids == alone.token_ids
    assert torch.allclose(torch.tensor(batched.log_probs), torch.tensor(alone.log_probs), atol=1e-4)
    reseeded = await srv.generate(prompt_ids=[1, 2, 3], sampling_params={**hot, "seed": 8}, request_id="c")
    assert reseeded.token_ids != alone.token_ids


def test_seeded_sampling_draws_from_the_softmax_of_the_warped_logits(model_dir):
    # the Gumbel-max trick after temperature, top-k and top-p: what do_sample draws from
    gen = HFGenerator(str(model_dir))
    prompt, n, temperature = [1, 2, 3], 4000, 0.1  # the tiny model's logits are small: sharpen them
    settings = SamplingSettings(
        temperature=temperature, top_p=0.9, top_k=5, repetition_penalty=1.0, ignore_eos=True
    )
    reqs = [GenerationRequest(prompt, 1, settings, False, str(i), seed=i) for i in range(n)]
    drawn = collections.Counter(ids[0] for ids, _ in gen.generate(reqs))
    with torch.no_grad():
        logits = gen.model(torch.tensor([prompt])).logits[0, -1]

    def warped(t: float) -> dict[int, float]:
        top = torch.topk(logits / t, 5)
        probs = torch.softmax(top.values, -1)  # sorted, largest first
        keep = int((probs.cumsum(0) < 0.9).sum()) + 1  # the smallest prefix holding 0.9
        kept = probs[:keep] / probs[:keep].sum()
        return dict(zip(top.indices[:keep].tolist(), kept.tolist()))

    def distance(p: dict[int, float]) -> float:  # total variation from what was drawn
        return 0.5 * sum(abs(drawn[t] / n - p.get(t, 0.0)) for t in set(drawn) | set(p))

    expected = warped(temperature)
    assert set(drawn) == set(expected) and len(expected) >= 2  # the nucleus, all of it, nothing else
    assert distance(expected) < 0.03
    assert distance(warped(1.0)) > 0.2  # the temperature left out: clearly another distribution


async def test_full_determinism_seeds_each_request_from_its_id_and_the_step(model_dir):
    # verl's rollout.full_determinism: request ids are deterministic ("det-<index>"), and so is
    # each sample, whatever the arrival order and batching
    cfg = {"full_determinism": True, "seed": 3}
    hot = {"temperature": 3.0, "max_tokens": 8, "ignore_eos": True}
    prompts = {f"det-{i}": [1, 2, 3] if i < 2 else [1, 40 + i] for i in range(4)}
    first = _server(model_dir, cfg)
    await first.set_global_steps(1)
    together = await asyncio.gather(
        *[first.generate(prompt_ids=p, sampling_params=dict(hot), request_id=k) for k, p in prompts.items()]
    )
    second = _server(model_dir, cfg)
    await second.set_global_steps(1)
    one_by_one = {}
    for k in reversed(prompts):
        one_by_one[k] = await second.generate(prompt_ids=prompts[k], sampling_params=dict(hot), request_id=k)
    assert [o.token_ids for o in together] == [one_by_one[k].token_ids for k in prompts]
    assert together[0].token_ids != together[1].token_ids  # same prompt, another sample of the group
    await second.set_global_steps(2)
    later = await second.generate(prompt_ids=prompts["det-0"], sampling_params=dict(hot), request_id="det-0")
    assert later.token_ids != together[0].token_ids  # a new step draws anew


async def test_full_determinism_tells_a_groups_samples_apart_when_verl_sends_one_id(model_dir):
    # verl's v1 agent loop sends "det-0" for every request: a prompt's n samples arrive alike
    # and must still differ (or a GRPO group has one answer and zero advantages), the same way
    # in every run
    cfg = {"full_determinism": True, "seed": 3}
    hot = {"temperature": 3.0, "max_tokens": 8, "ignore_eos": True}
    runs = []
    for _ in range(2):
        srv = _server(model_dir, cfg)
        await srv.set_global_steps(5)
        group = [
            await srv.generate(prompt_ids=[1, 2, 3], sampling_params=dict(hot), request_id="det-0")
            for _ in range(4)
        ]
        runs.append([o.token_ids for o in group])
    assert runs[0] == runs[1]
    assert len({tuple(t) for t in runs[0]}) == 4


def test_bad_sampling_params_are_rejected():
    kw = dict(prompt_len=4, response_length=8, prompt_length=32, max_model_len=40)
    with pytest.raises(ValueError, match="stop"):
        parse_sampling_params({"stop": ["x"]}, **kw)
    with pytest.raises(ValueError, match="top_p"):
        parse_sampling_params({"top_p": 0}, **kw)
    with pytest.raises(ValueError, match="headroom"):
        parse_sampling_params({}, **{**kw, "prompt_len": 40})
    settings, max_tokens, lp = parse_sampling_params({"max_tokens": 100, "logprobs": True}, **kw)
    assert max_tokens == 36 and lp  # clamped to the context left
    with pytest.raises(ValueError, match="unknown hf rollout option"):
        HFRolloutOptions.from_rollout_config({"engine_kwargs": {"hf": {"max_batch": 3}}})


def test_a_seed_is_an_integer_torch_can_seed_with_or_a_clear_error():
    assert parse_seed(None) is None
    assert parse_seed(7) == parse_seed(7.0) == parse_seed(np.int64(7)) == 7
    assert parse_seed(-(2**63)) == -(2**63) and parse_seed(2**64 - 1) == 2**64 - 1
    for bad in (1.5, "7", True, np.True_, [7], float("nan")):
        with pytest.raises(ValueError, match="seed must be an integer"):
            parse_seed(bad)
    for bad in (2**64, -(2**63) - 1):
        with pytest.raises(ValueError, match=r"seed must be in \[-2\*\*63, 2\*\*64\)"):
            parse_seed(bad)


async def test_a_bad_seed_fails_its_request_alone(model_dir):
    # torch refuses to seed a generator with 2**64: raised inside the batch, it failed every
    # request batched with it; checked on arrival, only the request that carried it fails
    srv = _server(model_dir)
    hot = {"temperature": 1.0, "max_tokens": 2}
    good, bad, cut = await asyncio.gather(
        srv.generate(prompt_ids=[1, 2], sampling_params={**hot, "seed": 3}, request_id="g"),
        srv.generate(prompt_ids=[1, 2], sampling_params={**hot, "seed": 2**64}, request_id="b"),
        srv.generate(prompt_ids=[1, 2], sampling_params={**hot, "seed": 2.5}, request_id="c"),
        return_exceptions=True,
    )
    assert not isinstance(good, Exception) and len(good.token_ids) >= 1
    assert isinstance(bad, ValueError) and "2**64" in str(bad)
    assert isinstance(cut, ValueError) and "2.5" in str(cut)


async def test_weight_update_changes_generation_and_rejects_bad_weights(model_dir):
    srv = _server(model_dir)
    greedy = {"temperature": 0, "max_tokens": 6, "ignore_eos": True, "logprobs": True}
    before = await srv.generate(prompt_ids=[1, 5, 6], sampling_params=dict(greedy), request_id="x")
    new = {n: torch.randn_like(p) for n, p in srv.generator.model.named_parameters()}
    assert await srv.update_weights(new, global_steps=7) == len(new)
    after = await srv.generate(prompt_ids=[1, 5, 6], sampling_params=dict(greedy), request_id="y")
    assert after.extra_fields["global_steps"] == 7
    assert after.log_probs != before.log_probs
    with pytest.raises(KeyError, match="unknown parameter"):
        await srv.update_weights({"not.a.weight": torch.zeros(1)})
    name = next(iter(new))
    with pytest.raises(ValueError, match="shape mismatch"):
        await srv.update_weights({name: torch.zeros(3, 3, 3)})
    # a failed update leaves the server usable
    again = await srv.generate(prompt_ids=[1, 5, 6], sampling_params=dict(greedy), request_id="z")
    assert again.token_ids == after.token_ids


async def test_bad_request_fails_alone_and_generate_errors_reach_every_caller(model_dir):
    srv = _server(model_dir)
    greedy = {"temperature": 0, "max_tokens": 2}
    good, bad = await asyncio.gather(
        srv.generate(prompt_ids=[1, 2], sampling_params=dict(greedy), request_id="g"),
        srv.generate(prompt_ids=[1, 10**6], sampling_params=dict(greedy), request_id="b"),
        return_exceptions=True,
    )
    assert not isinstance(good, Exception) and len(good.token_ids) >= 1
    assert isinstance(bad, ValueError) and "vocabulary" in str(bad)
    # a failure inside generate() (NaN weights make sampling fail) reaches every request of that
    # batch as an exception, never as an empty answer, and the server keeps serving after new weights
    healthy = {n: p.detach().clone() for n, p in srv.generator.model.named_parameters()}
    await srv.update_weights({n: torch.full_like(p, float("nan")) for n, p in healthy.items()})
    sample = {"temperature": 1.0, "max_tokens": 2}
    results = await asyncio.gather(
        *[srv.generate(prompt_ids=[1, 3], sampling_params=dict(sample), request_id=str(i)) for i in range(3)],
        return_exceptions=True,
    )
    assert all(isinstance(r, RuntimeError) for r in results), results
    with pytest.raises(RuntimeError, match="NaN"):  # greedy too: an argmax of NaN is token 0, silently
        await srv.generate(prompt_ids=[1, 3], sampling_params=dict(greedy), request_id="nan")
    await srv.update_weights(healthy)
    ok = await srv.generate(prompt_ids=[1, 3], sampling_params=dict(greedy), request_id="after")
    assert len(ok.token_ids) >= 1


async def test_abort_parks_new_requests_until_resume(model_dir):
    srv = _server(model_dir)
    greedy = {"temperature": 0, "max_tokens": 2}
    assert (await srv.abort_all_requests())["aborted_count"] == 0
    parked = asyncio.ensure_future(
        srv.generate(prompt_ids=[1, 4], sampling_params=dict(greedy), request_id="p")
    )
    await asyncio.sleep(0.3)
    assert not parked.done() and srv.stats["generate_calls"] == 0
    await srv.resume_generation()
    out = await asyncio.wait_for(parked, 30)
    assert len(out.token_ids) >= 1
