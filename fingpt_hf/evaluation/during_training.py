"""Benchmark scores during training: at each evaluation, the validation rows are scored the way
``fingpt-hf eval --mode score`` scores a test set (the summed log-likelihood of each label after
the prompt, ``evaluation.scoring``), and weighted F1 per benchmark is logged.

The eval loss says how well the label *tokens* are predicted; what a user chooses a checkpoint by
is the benchmark figure, so this logs ``eval_<name>_f1_weighted`` and ``eval_mean_f1_weighted``
(to TensorBoard and ``trainer_state.json``) and adds them to the metrics the Trainer compares for
``metric_for_best_model`` / ``load_best_model_at_end``. It lives in evaluation, which training
never imports: ``recipes/sft.py`` wires it in.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from transformers import TrainerCallback

from fingpt_hf.data.labels import LABELS
from fingpt_hf.data.prompts import adds_special_tokens, format_prompt


class ValidationF1Callback(TrainerCallback):
    """Scores ``rows`` (mixture-format rows with a ``dataset`` column) at every evaluation.

    Every process scores every row (the same forward passes in the same order, so ZeRO-3's
    collective parameter gathering stays in step); the figures are the same on each.
    """

    def __init__(self, trainer: Any, rows: Any, tokenizer: Any, prompt_style: str, max_length: int | None,
                 batch_size: int = 32) -> None:
        self.trainer, self.tokenizer, self.prompt_style = trainer, tokenizer, prompt_style
        self.max_length, self.batch_size = max_length, batch_size
        self.by_dataset: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows.to_list() if hasattr(rows, "to_list") else rows:
            self.by_dataset[row["dataset"]].append(row)
        # The prompts are the same at every evaluation: built once.
        self.prompts = {name: [format_prompt(row, style=prompt_style, tokenizer=tokenizer) for row in group]
                        for name, group in self.by_dataset.items()}

    def scores(self, model: Any) -> dict[str, float]:
        import torch

        from fingpt_hf.evaluation.scoring import pick_labels, score_labels
        from fingpt_hf.families.registry import get_family
        from fingpt_hf.metrics.scores import compute_sentiment_metrics

        family = get_family(model.config)
        was_training = model.training
        model.eval()
        out: dict[str, float] = {}
        try:
            # The trainer's own forward context: the autocast that a bf16 run (or the fast path's
            # bf16 CPU weights) needs, exactly as the eval loss is computed.
            with torch.no_grad(), self.trainer.compute_loss_context_manager():
                for name, rows in sorted(self.by_dataset.items()):
                    scores = score_labels(model, self.tokenizer, self.prompts[name], LABELS, batch_size=self.batch_size,
                                          add_special_tokens=adds_special_tokens(self.prompt_style),
                                          family=family, max_length=self.max_length)
                    metrics = compute_sentiment_metrics(pick_labels(scores, LABELS), [r["output"] for r in rows],
                                                        LABELS)
                    out[f"eval_{name}_f1_weighted"] = metrics["f1_weighted"]
        finally:
            model.train(was_training)
        out["eval_mean_f1_weighted"] = statistics.mean(out.values())
        return out

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None,
                    **kwargs: Any) -> None:
        figures = self.scores(self.trainer.model)
        if metrics is not None:
            metrics.update(figures)  # what _determine_best_metric reads after this returns
        self.trainer.log(figures)

