#!/usr/bin/env python3
"""Reference relevances for AttnLRP and CP-LRP (issue 30), from lxt 2.1 (the AttnLRP authors'
package), on the architecture fixtures' ViT and ConvNeXt (Tools/make_architecture_fixtures.py: the
same seeded weights, input and targets, rebuilt here and checked against the committed logits).

Writes into Tests/Fixtures/architectures/<model>_<exporter>/ (every export of the model):
  attnlrp.npy  lxt's efficient AttnLRP: LayerNorm by lxt's layer_norm_forward (the deviation held
               constant), GELU by lxt's non_linear_forward (the identity rule), and in each
               MultiheadAttention lxt's uniform rule as lxt's wrap_attention_forward applies it to
               Hugging Face attention: divide_gradient(q, 4), divide_gradient(k, 4),
               divide_gradient(v, 2) after the input projection (the attention computed
               explicitly with the module's own weights, checked to give the same logits);
               relevance = input * d(sum_b logit[b, target[b]]) / d input          [2, 3, 32, 32]
  cplrp.npy    (ViT) lxt's own map for torchvision's ViT, lxt.efficient.models.vit_torch.cp_LRP:
               CP-LRP inside the attention (query and key detached), AttnLRP's rules outside it
                                                                                    [2, 3, 32, 32]
  transformer_attribution.npy  (ViT, with --chefer) Chefer, Gur & Wolf, CVPR 2021, "Transformer
               Interpretability Beyond Attention Visualization", run by the authors' code: their
               baselines/ViT/ViT_LRP.py VisionTransformer built at this size and given the ViT's
               weights (checked to give the same logits), their
               ViT_explanation_generator.LRP.generate_LRP(method="transformer_attribution"), one
               image at a time (their sums normalise over the whole batch) on the CPU; the class
               token's row over the patches                                          [2, 4, 4]
               --chefer DIR is a checkout of github.com/hila-chefer/Transformer-Explainability
               (made at c3e578f76b954e8528afeaaee26de3f07e3fe559; needs einops).
lxt 2.1's package __init__ imports its Hugging Face BERT patches, which need an older transformers
than the one pinned in requirements-fixtures.txt; the script loads lxt's rule, patch and ViT modules
without that import (their code is unchanged).
Run after make_architecture_fixtures.py:  python3 Tools/make_transformer_fixtures.py [--chefer DIR]
"""
import copy
import importlib.util
import os
import sys
import types
from functools import partial

import numpy as np
import torch
import torch.nn as nn
from torchvision.models import vision_transformer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_architecture_fixtures as maf  # noqa: E402

# lxt.efficient's __init__ imports every model map (BERT's needs an older transformers): stand in
# for the map package, then load the modules used here from lxt's files.
sys.modules.setdefault("lxt.efficient.models", types.SimpleNamespace(get_default_map=None))
from lxt.efficient import patches  # noqa: E402
from lxt.efficient.rules import divide_gradient  # noqa: E402
import lxt  # noqa: E402


def lxt_module(name):
    path = os.path.join(os.path.dirname(lxt.__file__), "efficient", "models", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"lxt_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rebuilt = maf.rebuilt


def attnlrp_attention_forward(self, query, key, value, need_weights=False, **kwargs):
    """torchvision's MultiheadAttention (self-attention, no mask, no dropout in eval) computed
    explicitly, with lxt's uniform rule on q, k and v as lxt's wrap_attention_forward places it."""
    n, t, c = query.shape
    heads = self.num_heads
    q, k, v = torch.nn.functional.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
    q, k, v = divide_gradient(q, 4), divide_gradient(k, 4), divide_gradient(v, 2)
    split = lambda z: z.reshape(n, t, heads, c // heads).transpose(1, 2)
    q, k, v = split(q), split(k), split(v)
    a = torch.softmax(q @ k.transpose(-2, -1) / (c // heads) ** 0.5, dim=-1)
    out = (a @ v).transpose(1, 2).reshape(n, t, c)
    return self.out_proj(out), None


def layer_norm_2d_forward(self, x):
    """ConvNeXt's LayerNorm2d (over channels) through lxt's layer_norm_forward."""
    return patches.layer_norm_forward(self, x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def relevance(model, patch_map, x, target):
    """input * gradient of the target logits with the classes in patch_map patched, restored after."""
    saved = {cls: dict(cls.__dict__) for cls in patch_map}
    try:
        for cls, patch in patch_map.items():
            assert patch(cls), cls
        xg = x.clone().requires_grad_(True)
        out = model(xg)
        with torch.no_grad():
            assert (out - model.reference(x)).abs().max() < 1e-4, "the patched model computes other logits"
        out[torch.arange(x.shape[0]), torch.from_numpy(target)].sum().backward()
        return (xg * xg.grad).detach().numpy().astype(np.float32)
    finally:
        for cls, attributes in saved.items():
            for attr in set(cls.__dict__) - set(attributes):
                delattr(cls, attr)
            for attr, value in attributes.items():
                if cls.__dict__.get(attr) is not value:
                    setattr(cls, attr, value)


def chefer_transformer_attribution(checkout, vit, x, target):
    """The authors' transformer attribution on their ViT with this ViT's weights."""
    return chefer_maps(chefer_generator(checkout, vit, x), vit, x, target)


def chefer_generator(checkout, vit, x):
    """The authors' ViT given the weights of torchvision's `vit` (checked on `x`), in their LRP generator."""
    sys.path.insert(0, checkout)
    from baselines.ViT.ViT_LRP import VisionTransformer
    from baselines.ViT.ViT_explanation_generator import LRP
    layers = vit.encoder.layers
    dim = vit.hidden_dim
    model = VisionTransformer(img_size=vit.image_size, patch_size=vit.patch_size, num_classes=vit.heads.head.out_features,
                              embed_dim=dim, depth=len(layers), num_heads=layers[0].self_attention.num_heads,
                              mlp_ratio=layers[0].mlp[0].out_features / dim, qkv_bias=True).eval()
    model.norm.eps = vit.encoder.ln.eps
    with torch.no_grad():
        def copy_linear(a, weight, bias):
            a.weight.copy_(weight)
            a.bias.copy_(bias)
        copy_linear(model.patch_embed.proj, vit.conv_proj.weight, vit.conv_proj.bias)
        model.cls_token.copy_(vit.class_token)
        model.pos_embed.copy_(vit.encoder.pos_embedding)
        for block, layer in zip(model.blocks, layers):
            for a, b in [(block.norm1, layer.ln_1), (block.norm2, layer.ln_2), (block.mlp.fc1, layer.mlp[0]),
                         (block.mlp.fc2, layer.mlp[3]), (block.attn.proj, layer.self_attention.out_proj)]:
                copy_linear(a, b.weight, b.bias)
            copy_linear(block.attn.qkv, layer.self_attention.in_proj_weight, layer.self_attention.in_proj_bias)
        copy_linear(model.norm, vit.encoder.ln.weight, vit.encoder.ln.bias)
        copy_linear(model.head, vit.heads.head.weight, vit.heads.head.bias)
    # (Their forward hooks the embedding's gradient, so it runs with gradients on.)
    assert (model(x.clone().requires_grad_(True)) - vit(x)).abs().max() < 1e-5, "the authors' ViT computes other logits"
    return LRP(model)


def chefer_maps(generator, vit, x, target):
    """The generator's transformer attribution of each image, on the patch grid [N, h, w]."""
    # Their generator moves its one-hot vector to CUDA; on the CPU that is the identity.
    cuda = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        maps = [generator.generate_LRP(x[b:b + 1].clone().requires_grad_(True), index=int(target[b]),
                                       method="transformer_attribution").detach() for b in range(x.shape[0])]
    finally:
        torch.Tensor.cuda = cuda
    grid = vit.image_size // vit.patch_size
    return torch.cat(maps).reshape(x.shape[0], grid, grid).numpy().astype(np.float32)


# AttnLRP's rules outside the attention (lxt's patches for torchvision's GELU and LayerNorm) and
# the uniform rule inside it.
OUTSIDE = {
    vision_transformer.nn.GELU: partial(patches.patch_method, patches.non_linear_forward, keep_original=True),
    vision_transformer.nn.LayerNorm: partial(patches.patch_method, patches.layer_norm_forward),
}
ATTENTION_PATCH = partial(patches.patch_method, attnlrp_attention_forward, keep_original=True)


def main():
    from torchvision.models import convnext
    chefer = sys.argv[sys.argv.index("--chefer") + 1] if "--chefer" in sys.argv else None
    results = {}
    vit, x, target = rebuilt("vit")
    reference = copy.deepcopy(vit)
    vit.reference = lambda z: reference(z)
    attnlrp_map = dict(OUTSIDE)
    attnlrp_map[vision_transformer.nn.MultiheadAttention] = ATTENTION_PATCH
    results["vit"] = {"attnlrp": relevance(vit, attnlrp_map, x, target),
                      "cplrp": relevance(vit, lxt_module("vit_torch").cp_LRP, x, target)}
    if chefer:
        results["vit"]["transformer_attribution"] = chefer_transformer_attribution(chefer, reference, x, target)

    model, x, target = rebuilt("convnext")
    reference = copy.deepcopy(model)
    model.reference = lambda z: reference(z)
    convnext_map = dict(OUTSIDE)
    convnext_map[convnext.LayerNorm2d] = partial(patches.patch_method, layer_norm_2d_forward)
    results["convnext"] = {"attnlrp": relevance(model, convnext_map, x, target)}

    for name, maps in results.items():
        maf.save_references(name, maps, lambda value: f"sum per image {value.reshape(2, -1).sum(1)}")


if __name__ == "__main__":
    sys.exit(main())
