"""`fingpt-hf predict`: label a user's CSV/JSONL/Parquet rows with a base model or a tuned adapter.

``run_prediction(PredictConfig(...))`` is the whole command; ``predict_texts`` labels a list of
texts with an already loaded model (what the throughput benchmark times).
"""

from fingpt_hf.prediction.config import PredictConfig
from fingpt_hf.prediction.runner import PredictionSummary, predict_texts, run_prediction

__all__ = ["PredictConfig", "PredictionSummary", "predict_texts", "run_prediction"]
