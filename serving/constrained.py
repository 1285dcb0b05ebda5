"""Greedy decoding under a llama.cpp grammar without matching the whole vocabulary every token.

llama.cpp's grammar sampler matches every token of the vocabulary against the grammar at every
step. On Gemma's 262 144-token vocabulary that is most of the judge's time per token. The token
greedy decoding picks under a grammar is the highest-scoring token the grammar allows, and that
token is also the best allowed one in any shortlist of top-scoring tokens that contains an
allowed token. So `GreedyGrammar` checks the model's first choice, then the top 64, then the top
4 096, and the whole vocabulary only when none of those is allowed. The tokens are the same as
llama.cpp's grammar sampler followed by greedy; tests/test_embedded.py checks that on the real
model and bench/bench_judge.py measures the speed-up.
"""

import ctypes

import numpy as np

SHORTLISTS = (1, 64, 4_096)
# llama_token_data: {int32 id; float logit; float p}
TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class GreedyGrammar:
    """A logits processor for `Llama.generate(temp=0, repeat_penalty=1)`: every logit except
    the one the grammar-constrained greedy choice would pick becomes -inf.

    llama.cpp's grammar state advances as tokens are accepted; `Llama.generate` hands each call
    the token ids so far, so the tokens generated since the previous call are accepted first."""

    def __init__(self, llama_cpp, llm, grammar):
        self._lib = llama_cpp
        self._sampler = llama_cpp.llama_sampler_init_grammar(
            llm._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8"))
        if not self._sampler:
            raise ValueError("llama.cpp could not build a sampler from this grammar")
        self._accepted: int | None = None
        self.checks = dict.fromkeys((*SHORTLISTS, "vocabulary"), 0)  # where each choice was made

    def __call__(self, input_ids, logits: np.ndarray) -> np.ndarray:
        self._accept_new(input_ids)
        for size in SHORTLISTS:
            if size == 1:
                ids = np.array([int(np.argmax(logits))], dtype=np.intc)
            else:
                floor = np.partition(logits, -size)[-size]
                ids = np.flatnonzero(logits >= floor).astype(np.intc)  # ties at the edge too
            allowed = self._filter(ids, logits)
            if np.isfinite(allowed).any():
                self.checks[size] += 1
                return self._only(int(ids[np.argmax(allowed)]), logits)
        self.checks["vocabulary"] += 1
        allowed = self._filter(np.arange(len(logits), dtype=np.intc), logits)
        return allowed

    def _accept_new(self, input_ids) -> None:
        if self._accepted is None:  # the first call comes right after the prompt
            self._accepted = len(input_ids)
        for token in input_ids[self._accepted:]:
            self._lib.llama_sampler_accept(self._sampler, int(token))
        self._accepted = len(input_ids)

    def _filter(self, ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """The logits of `ids` (ascending), -inf where the grammar forbids the token."""
        data = np.zeros(len(ids), dtype=TOKEN_DATA)
        data["id"] = ids
        data["logit"] = logits[ids]
        candidates = self._lib.llama_token_data_array(
            data=data.ctypes.data_as(ctypes.POINTER(self._lib.llama_token_data)),
            size=len(ids), selected=-1, sorted=False)
        self._lib.llama_sampler_apply(self._sampler, ctypes.byref(candidates))
        return data["logit"]

    @staticmethod
    def _only(token: int, logits: np.ndarray) -> np.ndarray:
        chosen = np.full_like(logits, -np.inf)
        chosen[token] = logits[token]
        return chosen

    def close(self) -> None:
        if self._sampler:
            self._lib.llama_sampler_free(self._sampler)
            self._sampler = None
