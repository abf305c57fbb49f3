"""Test and demo support that speaks real protocols: a fake OpenAI-compatible server,
a uvicorn-in-a-thread runner. Shipped in the package so benchmarks, examples and
downstream users' tests can use them too."""
