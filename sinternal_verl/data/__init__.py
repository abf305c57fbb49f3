"""SInternal verification-data pipeline (sample -> label -> select -> critique -> build)
and the pieces of the verification-SFT recipe. Entry point: :func:`run_pipeline`."""

from .config import PipelineConfig
from .pipeline import STAGES, PipelineResult, run_pipeline

__all__ = ["PipelineConfig", "PipelineResult", "STAGES", "run_pipeline"]
