"""A stand-in for the umt5-xxl text encoder in harness runs of the Wan workflows (tests/tools/wan_harness.py).

CLIPLoader type ``wan`` always builds the 5.7 B-parameter UMT5-XXL, so the tiny-model runs replace
CLIPTextEncode by this node: a CONDITIONING of the shape Wan takes ([1, tokens, 4096]), seeded by the text.
Test tooling only: not part of the pack.
"""

import zlib

import torch


class HarnessWanText:
    CATEGORY = "testing"
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True, "default": ""})}}

    def encode(self, text):
        g = torch.Generator().manual_seed(zlib.crc32(text.encode()))
        return ([[torch.randn(1, 16, 4096, generator=g) * 0.1, {}]],)


NODE_CLASS_MAPPINGS = {"HarnessWanText": HarnessWanText}
NODE_DISPLAY_NAME_MAPPINGS = {"HarnessWanText": "Harness: Wan text stand-in"}
