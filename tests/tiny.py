"""Tiny constructor kwargs per variant so the registry-wide tests run fast on 2 CPU cores."""
TINY = {
    "vitviz_xcit_n12_p16_224_": dict(img_size=32, depth=2, embed_dim=32, num_heads=2),  # patch 16 -> 2x2 tokens
    "vitviz_xcit_n12_p4_32_": dict(depth=2, embed_dim=32, num_heads=2),
    "vitviz_vit_": dict(depth=2, embed_dim=32, num_heads=2, patch_size=4),
    "vitviz_fnet_32": dict(depth=2, embed_dim=32, patch_size=4),
    "vitviz_mixer_32": dict(num_blocks=2, embed_dim=32, patch_size=4),
    "vitviz_cvt_13_224": dict(img_size=64, depths=(1, 1, 1), dims=(12, 24, 48)),
    "vitviz_cvt_": dict(depths=(1, 1, 1), dims=(16, 32, 64)),
}


def tiny_kwargs(name: str) -> dict:
    for prefix, kwargs in TINY.items():
        if name.startswith(prefix):
            return dict(kwargs)
    raise KeyError(f"no tiny config for {name}: add one to tests/tiny.py")


def tiny_img_size(name: str) -> int:
    return tiny_kwargs(name).get("img_size", 32)
