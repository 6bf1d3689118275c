"""Our own decoder: a KV cache we control, shared-prefix batches, continuous batching, chat sessions, label scores.

    from core.decoding import Decoder, SamplingParams, ChatSession, label_logprobs
    answers = Decoder(model, tok).generate(prompt_id_lists, SamplingParams(max_new_tokens=64), batch_size=8)
    for delta in Decoder(model, tok).stream(prompt_ids): print(delta, end="")
    chat = ChatSession(model, tok, system_prompt="..."); chat.send("hi"); chat.send("and then?")
    scores = label_logprobs(model, prompt_ids, [label_ids, ...])   # (K,) log-likelihoods
    fast = quantize_for_chat(model)   # an int8 copy for chat's "fast answers"
"""
from core.decoding.batch import Decoder, shared_prefix
from core.decoding.int8 import quantize_for_chat
from core.decoding.kvcache import Runner
from core.decoding.rows import Answer
from core.decoding.sampling import SamplingParams
from core.decoding.scoring import label_logprobs, label_token_logprobs
from core.decoding.session import ChatSession
from core.decoding.threads import decode_threads

__all__ = ["Decoder", "SamplingParams", "Answer", "ChatSession", "label_logprobs",
           "label_token_logprobs", "Runner", "shared_prefix",
           "quantize_for_chat", "decode_threads"]
