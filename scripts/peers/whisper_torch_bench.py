#!/usr/bin/env python3
"""PyTorch + transformers beside `qwglm bench --synthetic whisper-*` on the GPU machine: random f16
weights of the published Whisper shapes; encoder for one 30 s window (median of 5 after a
warm-up) and greedy decoder steps with a static KV cache (the logits' argmax per step, as our
recognizer reads one token per step). Prints one JSON line per shape.
Usage: python3 whisper_torch_bench.py [shape ...]   (default: whisper-base whisper-large-v3-turbo)"""
import json, statistics, sys, time
import torch
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.cache_utils import EncoderDecoderCache, DynamicCache

SHAPES = {
    "whisper-tiny": (384, 4, 4, 6, 80, 51865),
    "whisper-base": (512, 6, 6, 8, 80, 51865),
    "whisper-small": (768, 12, 12, 12, 80, 51865),
    "whisper-large-v3-turbo": (1280, 32, 4, 20, 128, 51866),
}
TOKENS_PER_WINDOW = 100  # as qwglm bench: about 150 words a minute at 1.3 tokens a word
dev = "cuda"
torch.manual_seed(0)
for name in sys.argv[1:] or ["whisper-base", "whisper-large-v3-turbo"]:
    d, enc, dec, heads, mels, vocab = SHAPES[name]
    cfg = WhisperConfig(d_model=d, encoder_layers=enc, decoder_layers=dec, encoder_attention_heads=heads,
                        decoder_attention_heads=heads, encoder_ffn_dim=4 * d, decoder_ffn_dim=4 * d,
                        num_mel_bins=mels, vocab_size=vocab, max_source_positions=1500, max_target_positions=448)
    r = {"model": name}
    for attn in ["sdpa", "eager"]:
        cfg._attn_implementation = attn
        with torch.device(dev):
            m = WhisperForConditionalGeneration(cfg).to(torch.float16).eval()
        mel = torch.randn(1, mels, 3000, device=dev, dtype=torch.float16)
        sync = torch.cuda.synchronize
        with torch.no_grad():
            enc_model = m.model.encoder
            enc_model(mel); sync()
            times = []
            for _ in range(5):
                t = time.perf_counter(); h = enc_model(mel).last_hidden_state; sync()
                times.append((time.perf_counter() - t) * 1000)
            encode_ms = statistics.median(times)
            ids = torch.tensor([[50258, 50259, 50360, 50364]], device=dev)
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
            out = m(encoder_outputs=(h,), decoder_input_ids=ids, past_key_values=cache, use_cache=True)
            nxt = out.logits[:, -1:].argmax(-1)
            for _ in range(4):
                out = m(encoder_outputs=(h,), decoder_input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
                nxt = out.logits[:, -1:].argmax(-1)
            sync(); n = 64; t = time.perf_counter()
            for _ in range(n):
                out = m(encoder_outputs=(h,), decoder_input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)
                nxt = out.logits[:, -1:].argmax(-1)
                nxt.item()
            tps = n / (time.perf_counter() - t)
        r[attn] = {"encode_ms": encode_ms, "decode_tokens_per_s": tps,
                   "rtf": (encode_ms + TOKENS_PER_WINDOW * 1000 / tps) / 30000}
        del m; torch.cuda.empty_cache()
    print(json.dumps(r), flush=True)
