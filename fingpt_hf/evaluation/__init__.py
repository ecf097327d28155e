"""Evaluation: label scoring and FinGPT-style generation (``runner.run_evaluation``), result files
(``results``), model/adapter loading (``model_loading``), and comparison with published numbers."""
