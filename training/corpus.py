"""The persona corpus in training/data/: where each file lives and how the split is made.

    python -m training.corpus split     merge critics/<id>.new.jsonl (if any) and the card
                                        examples into <id>.train.jsonl / <id>.heldout.jsonl
"""


from chatbot_free_personas import load_card  # noqa: F401  (placeholder, replaced below)
