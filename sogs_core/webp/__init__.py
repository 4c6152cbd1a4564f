"""Encode stage: quantized images -> lossless WebP (VP8L) bytes.

`vp8l` is our own encoder, written in torch so that it runs on the device beside the other
stages (libwebp's encoder is one single-threaded call per image: the tail of a large scene).
It is checked against libwebp's decoder (Pillow) in the tests.
"""
