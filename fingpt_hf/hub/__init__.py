"""Model cards and pushing adapters to the Hugging Face Hub."""

from fingpt_hf.hub.card import render_model_card, write_model_card
from fingpt_hf.hub.push import push_to_hub
from fingpt_hf.hub.repo_id import check_repo_id

__all__ = ["check_repo_id", "push_to_hub", "render_model_card", "write_model_card"]
