"""Persona datasets, LoRA/QLoRA SFT and DPO, merge and GGUF export (see the training issue).

Depends on `serving` (chat templates, backends as teachers), never on `chatbot`.
"""
