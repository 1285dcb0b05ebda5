"""Model serving for Polaris: one ChatBackend protocol, several implementations."""

from serving.backend import ChatBackend, available_backends, create_backend, register_backend
from serving.errors import (
    BackendBusy,
    BackendError,
    BackendUnavailable,
    MissingDependency,
    ModelNotFound,
    PolarisError,
    PromptTooLong,
)
from serving.types import Chunk, Completion, GenerationOptions, Health, Message, ModelInfo, Stats

__all__ = [
    "BackendBusy",
    "BackendError",
    "BackendUnavailable",
    "ChatBackend",
    "Chunk",
    "Completion",
    "GenerationOptions",
    "Health",
    "Message",
    "MissingDependency",
    "ModelInfo",
    "ModelNotFound",
    "PolarisError",
    "PromptTooLong",
    "Stats",
    "available_backends",
    "create_backend",
    "register_backend",
]
