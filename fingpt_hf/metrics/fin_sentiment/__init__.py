"""Directory of the `evaluate` module fin_sentiment; a package only so the script ships in the wheel."""
