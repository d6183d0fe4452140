"""Tiny constructor kwargs per variant so the registry-wide tests run fast on 2 CPU cores."""
TINY = {
    "vitviz_xcit_n12_p16_224_": dict(img_size=32, depth=2, embed_dim=32, num_heads=2),  # patch 16 -> 2x2 tokens
    "vitviz_xcit_n12_p4_32_": dict(depth=2, embed_dim=32, num_heads=2),
    "vitviz_vit_": dict(depth=2, embed_dim=32, num_heads=2, patch_size=4),
    "vitviz_fnet_32": dict(depth=2, embed_dim=32, patch_size=4),
    "vitviz_mixer_32": dict(num_blocks=2, embed_dim=32, patch_size=4),
    "vitviz_cvt_13_224": dict(img_size=64, depths=(1, 1, 1), dims=(12, 24, 48)),
    "vitviz_cvt_": dict(depths=(1, 1, 1), dims=(16, 32, 64)),
    # LeViT: 224 configs at 64 px -> 4x4, 2x2, 1x1 tokens; 32 px (stride-4 stem) -> 8x8, 4x4, 2x2
    "vitviz_levit_128s_224_": dict(img_size=64, embed_dim=(16, 32, 48), key_dim=8, num_heads=(2, 2, 2),
                                   depth=(1, 1, 1)),
    "vitviz_levit_": dict(embed_dim=(16, 32, 48), key_dim=8, num_heads=(2, 2, 2), depth=(1, 1, 1)),
    # PiT: 224 configs at 64 px -> 7x7, 4x4, 2x2 tokens (+ class token); 32 px -> 16x16, 8x8, 4x4
    "vitviz_pit_ti_224_": dict(img_size=64, base_dims=(8, 8, 8), heads=(1, 2, 2), depth=(1, 1, 1)),
    "vitviz_pit_": dict(base_dims=(8, 8, 8), heads=(1, 2, 2), depth=(1, 1, 1)),
    "vitviz_cct_": dict(depth=2, embed_dim=32, num_heads=2),  # 16x16 = 256 tokens, as the full config
}


def tiny_kwargs(name: str) -> dict:
    for prefix, kwargs in TINY.items():
        if name.startswith(prefix):
            return dict(kwargs)
    raise KeyError(f"no tiny config for {name}: add one to tests/tiny.py")


def tiny_img_size(name: str) -> int:
    return tiny_kwargs(name).get("img_size", 32)
