"""Grammar-constrained sampling that checks the grammar after sampling, not before.

llama-cpp-python puts the grammar in the sampler chain, so llama.cpp matches every token of the
vocabulary against the grammar at every step: 151,936 tokens for Qwen2.5, about 70 ms a token on
a 2-core host, twice the cost of the model itself. llama.cpp's own tools (``common_sampler_sample``)
sample first and ask the grammar only about the token chosen; the whole vocabulary is matched
only when that token is refused. The result is the same distribution: greedy picks the grammar's
best token either way, and a sample from the model's distribution that is kept when valid and
redrawn from the valid tokens otherwise is the distribution restricted to the valid tokens.

``LazyGrammarSampler.sample`` has the signature ``Llama.generate`` calls, so the engine installs
it on the ``Llama`` object for one request and keeps llama-cpp-python's prompt and cache handling.
"""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np

from tether.errors import GenerationError


class LazyGrammarSampler:
    """One request's sampling: the chain without the grammar, plus the grammar on its own.

    ``logits_processors`` (the engine's logit_bias) adjust a copy of the logits first, as
    llama-cpp-python's ``logits_processor`` would. Call ``free()`` when the request ends.
    """

    def __init__(self, llm: Any, grammar: Any, *, temp: float, top_k: int, top_p: float,
                 frequency_penalty: float, presence_penalty: float, logits_processors: list[Any] | None = None):
        import llama_cpp
        from llama_cpp import _internals

        self._llama_cpp = llama_cpp
        self._llm = llm
        self._chain = llm._init_sampler(top_k=top_k, top_p=top_p, min_p=0.0, typical_p=1.0, temp=temp,
                                        repeat_penalty=1.0, frequency_penalty=frequency_penalty,
                                        presence_penalty=presence_penalty, logits_processor=None, grammar=None)
        self._grammar = llama_cpp.llama_sampler_init_grammar(
            llm._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8"))
        if not self._grammar:  # the engine parsed this grammar before; this would be llama.cpp's fault
            raise GenerationError("llama.cpp could not build the grammar sampler")
        self._n_vocab = llm.n_vocab()
        self._candidates = _internals.LlamaTokenDataArray(n_vocab=self._n_vocab)
        self._processors = logits_processors or []
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_array = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self._one, llama_cpp.llama_token_data_p), size=1, selected=-1, sorted=False)
        self.full_matches = 0  # steps that matched the whole vocabulary (the chosen token was refused)
        self.steps = 0

    def sample(self, *, idx: int | None = None, **_: Any) -> int:
        llama_cpp, llm = self._llama_cpp, self._llm
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, idx - llm.n_tokens if idx is not None else -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self._n_vocab,))
        if self._processors:
            logits = logits.copy()
            for process in self._processors:
                logits = process(llm._input_ids, logits)
        token = self._choose(logits)
        self.steps += 1
        if not self._allowed(token):
            self.full_matches += 1
            self._candidates.copy_logits(logits)
            llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(self._candidates.candidates))
            token = self._choose(None)
        llama_cpp.llama_sampler_accept(self._grammar, token)
        llama_cpp.llama_sampler_accept(self._chain.sampler, token)
        return token

    def _choose(self, logits: np.ndarray | None) -> int:
        """The chain's pick among the candidates (filled from ``logits`` unless None)."""
        if logits is not None:
            self._candidates.copy_logits(logits)
        array = self._candidates.candidates
        self._llama_cpp.llama_sampler_apply(self._chain.sampler, ctypes.byref(array))
        return int(array.data[array.selected].id)

    def _allowed(self, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 1.0, 0.0
        self._one_array.size, self._one_array.selected, self._one_array.sorted = 1, -1, False
        self._llama_cpp.llama_sampler_apply(self._grammar, ctypes.byref(self._one_array))
        return not math.isinf(self._one[0].logit)

    def free(self) -> None:
        if self._grammar:
            self._llama_cpp.llama_sampler_free(self._grammar)
            self._grammar = None
