#!/usr/bin/env python3
"""Mutation testing: does the suite catch small, realistic bugs?

Each mutant below is one edit (an exact text, replaced at its n-th occurrence in one file) that a
careful reviewer would consider a plausible bug, and the tests (a `swift test --filter` pattern)
that must fail because of it (or `C:Tests/C/run.sh`: the C interface's test program). The harness copies the working tree to .build-mutate/tree (so
uncommitted work is tested too), builds the tests once unmutated and checks that every filter
passes there, then applies each mutant in turn, rebuilds (incrementally), runs its filter and
restores the file. A mutant is caught when its tests fail; one that does not compile is reported
as invalid. Every mutant in the list must be caught: extend the list with every numeric change.

Not part of `make test` (a rebuild per mutant: about an hour on 2 cores).

    python3 Tools/mutate.py                 # every mutant
    python3 Tools/mutate.py conv_ pillow    # the mutants whose id contains one of the words
    python3 Tools/mutate.py --list

Also reports, for each caught mutant, whether the tests that existed before the round that added
this harness would have caught it (the `NEW_TESTS` classes skipped): the mutants that needed new
tests. Report: .build-mutate/report.json.
"""
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
WORK = os.path.join(ROOT, ".build-mutate")
TREE = os.path.join(WORK, "tree")
# Without cross-module optimisation: with it, a release build inlines small public functions (an
# initializer, a getter) into the modules that call them, and the incremental build of a mutant does
# not recompile those callers, so their tests ran the unmutated copy and a mutant in such a function
# was reported as survived (found by hand: GuidedGradCAM's init, PropagationMethods.swift:84be875a10).
NO_CMO = ["-Xswiftc", "-disable-cmo"]
BUILD = ["swift", "build", "-c", "release", "-Xswiftc", "-enable-testing", *NO_CMO, "--build-tests"]
TEST = ["swift", "test", "-c", "release", "-Xswiftc", "-enable-testing", *NO_CMO, "--disable-swift-testing", "--skip-build"]

# Test classes added with the harness (and the tests issue); skipping them shows what the suite
# caught before.
NEW_TESTS = ["ImplicitConvolutionTests", "ReferenceCheckTests", "HostileInputTests", "FallbackTests", "OutputWriterTests", "RegistryAndDemoTests", "OneDNNTests"]

# A mutant whose tests are this runs the C interface's test program (Tests/C/run.sh) on the tree's
# build instead of a `swift test` filter: the C contracts (include/xai.h) are tested there.
C_TESTS = "C:Tests/C/run.sh"


# (id, file, text, replacement, occurrence, test filter, what the bug is)
MUTANTS = [
    # Kernels (OpenCL, run on PoCL)
    ("cl_depthwise_backward_axes", "Kernels/conv.cl", "const int ox = tap_output(ix, PL, kx, DW, SW, OW);",
     "const int ox = tap_output(ix, PT, kx, DW, SH, OW);", 2, "OpCaseTests",
     "depthwise input gradient on OpenCL uses the vertical pad and stride along x"),
    ("cl_im2col_stride", "Kernels/conv.cl", "ix = ox * SW - PL + kx * DW;", "ix = ox * SH - PL + kx * DW;", 1, "OpCaseTests",
     "im2col on OpenCL steps x by the vertical stride"),
    ("cl_movement_strides", "Kernels/movement.cl", "src[src_offset + box_offset(i, rank, dims, src_strides)]",
     "src[src_offset + box_offset(i, rank, dims, dst_strides)]", 1, "OpCaseTests",
     "strided copies on OpenCL read the source with the destination's strides"),
    ("cl_reduce_min_sign", "Kernels/reduce.cl", "const float sign = op == 2 ? 1.0f : -1.0f;\n        float m = -INFINITY;",
     "const float sign = 1.0f;\n        float m = -INFINITY;", 1, "OpCaseTests", "min reduction on OpenCL computes the max"),
    # CPU backend
    ("cpu_im2col_pad", "Sources/XAICPU/CPUBackend+Conv.swift", "let x0 = kx * g.p.dilationW - g.p.padLeft",
     "let x0 = kx * g.p.dilationW - g.p.padTop", 1, "OpCaseTests", "im2col on the CPU pads x by the top pad"),
    ("cpu_depthwise_backward_stride", "Sources/XAICPU/CPUBackend+Conv.swift",
     "let ix = ox * g.p.strideW - g.p.padLeft + kx * g.p.dilationW", "let ix = ox * g.p.strideH - g.p.padLeft + kx * g.p.dilationW", 2,
     "OpCaseTests", "depthwise input gradient on the CPU steps x by the vertical stride"),
    ("cpu_softmax_backward", "Sources/XAICPU/CPUBackend.swift", "py[i] * (pg[i] - s)", "py[i] * pg[i] - s", 1, "OpCaseTests",
     "softmax backward on the CPU misplaces a parenthesis"),
    ("cpu_composite_swap", "Sources/XAICPU/CPUBackend+Masks.swift", "dst[i] = pb[i] + mv * (px[i] - pb[i])",
     "dst[i] = px[i] + mv * (pb[i] - px[i])", 1, "OpCaseTests", "perturbed copies on the CPU swap image and baseline"),
    ("cpu_movement_destination", "Sources/XAICPU/CPUBackend+Movement.swift", "d += i * copy.destinationStrides[axis]",
     "d += i * copy.sourceStrides[axis]", 1, "OpCaseTests", "row copies on the CPU place rows with the source's strides"),
    ("cpu_blocked_pool_ties", "Sources/CLoops/loops.c", "const int better = v[l] > best_value[l];",
     "const int better = v[l] >= best_value[l];", 1, "OneDNNTests", "blocked max-pool backward credits the last maximum"),
    ("cpu_blocked_avgpool_backward", "Sources/CLoops/loops.c", "for (int l = 0; l < L; l++) d[l] += g[l] / div;",
     "for (int l = 0; l < L; l++) d[l] += g[l];", 1, "OneDNNTests", "average-pool backward on blocks forgets to divide by the window"),
    ("cpu_relu_backward_at_zero", "Sources/CLoops/loops.c", "out[i] = yi > 0.0f ? gi : 0.0f;",
     "out[i] = yi >= 0.0f ? gi : 0.0f;", 1, "ONNXFixtureTests", "ReLU's gradient passes where the output is exactly zero"),
    ("cpu_sub_operands", "Sources/CLoops/loops.c", "out[i] = a[i] - b[i]; break;",
     "out[i] = b[i] - a[i]; break;", 1, "OpCaseTests", "same-shape subtraction on the CPU swaps its operands"),
    ("cpu_blocked_mean", "Sources/XAICPU/CPUBackend+Blocked.swift", "Float(op == .mean ? acc[l] / Double(hw) : acc[l])",
     "Float(op == .mean ? acc[l] / Double(hw + 1) : acc[l])", 1, "OneDNNTests", "blocked global average pooling divides by one too many"),
    ("dnnl_residual_after_activation", "Sources/XAICPU/OneDNN.swift",
     "try Self.check(dnnl_post_ops_append_binary(ops, dnnl_binary_add, &skip), \"post_ops_append_binary\")",
     "_ = skip", 1, "OpCaseTests", "the fused residual is dropped from oneDNN's post-ops"),
    ("dnnl_residual_subtracted", "Sources/XAICPU/OneDNN.swift", "dnnl_post_ops_append_binary(ops, dnnl_binary_add, &skip)",
     "dnnl_post_ops_append_binary(ops, dnnl_binary_sub, &skip)", 1, "OpCaseTests", "the fused residual is subtracted"),
    ("dnnl_depthwise_stride", "Sources/XAICPU/OneDNN.swift", "Int64(dw.plan.kernelHeight), Int64(q.strideH),",
     "Int64(dw.plan.kernelHeight), Int64(1),", 1, "OneDNNTests", "the fused depthwise convolution ignores its stride"),
    ("dnnl_depthwise_activation", "Sources/XAICPU/OneDNN.swift",
     "try Self.check(dnnl_post_ops_append_eltwise(ops, 1, alg, alpha, beta), \"post_ops_append_eltwise (depthwise)\")",
     "_ = (alg, alpha, beta)", 1, "OneDNNTests", "the fused depthwise convolution drops its activation"),
    ("executor_fuses_for_backward", "Sources/XAIGraph/Executor.swift", "if !forBackward, depthwisePairs.contains(index),",
     "if depthwisePairs.contains(index),", 1, "OneDNNTests", "a pass for backward fuses away the expansion it needs"),
    ("executor_fuses_kept", "Sources/XAIGraph/Executor.swift", "!keep.contains(node.outputs[0]),", "true,", 1, "OneDNNTests",
     "an expansion asked for with keep is fused away"),
    ("team_last_chunk", "Sources/CLoops/loops.c", "memory_order_relaxed)) < job->chunks)",
     "memory_order_relaxed)) < job->chunks - 1)", 1, "OneDNNTests", "the OpenMP team loop skips its last chunk"),
    # Executor
    ("executor_residual_gradient", "Sources/XAIGraph/Executor.swift", "if needed.contains(3) { r[3] = g }", "if needed.contains(3) { r[3] = gy }", 1,
     "ONNXFixtureTests", "the skip connection's gradient skips the fused activation's derivative"),
    ("executor_concat_backward", "Sources/XAIGraph/Executor.swift", "                offset += s[ax]\n",
     "                offset += s[ax] - (i == 0 ? 1 : 0)\n", 1, "ONNXFixtureTests",
     "the gradient of Concat is sliced one element off"),
    # Methods
    ("ig_baseline_dropped", "Sources/XAIMethods/GradientMethods.swift",
     "let points = try be.binary(.add, try be.binary(.mul, a, diff), b0)", "let points = try be.binary(.mul, a, diff)", 1,
     "ReferenceCheckTests", "Integrated Gradients walks from zero instead of from the baseline"),
    ("ig_gauss_legendre_odd", "Sources/XAIMethods/GradientMethods.swift", "for i in 0..<((n + 1) / 2) {", "for i in 0..<(n / 2) {", 1,
     "ReferenceCheckTests", "Gauss-Legendre drops the middle node of an odd rule"),
    ("ig_right_rule", "Sources/XAIMethods/GradientMethods.swift", "case .right: return ((1...n).map { Double($0) / dn }",
     "case .right: return ((0..<n).map { Double($0 + 1) / (dn + 1) }", 1, "MethodReferenceTests",
     "the right Riemann rule spaces its nodes by 1 / (n + 1)"),
    ("kernelshap_kernel", "Sources/XAIMethods/KernelSHAP.swift", "Double(m - 1) / (Double(s) * Double(m - s))",
     "Double(m - 1) / (Double(s) * Double(m - s + 1))", 1, "ReferenceCheckTests", "a biased Shapley kernel"),
    ("kernelshap_paired_sampling", "Sources/XAIMethods/KernelSHAP.swift", "kernel[$0] / ($0 + 1 <= pairedSizes ? 2 : 1)",
     "kernel[$0] / 1", 1, "ReferenceCheckTests", "paired sizes drawn at their full mass though each draw adds two rows"),
    ("lime_kernel_width", "Sources/XAIMethods/LIME.swift", "return exp(-distance * distance / (width * width)).squareRoot()",
     "return exp(-distance * distance / width).squareRoot()", 1, "ReferenceCheckTests", "LIME's kernel uses the width, not its square"),
    ("occlusion_coverage", "Sources/XAIMethods/Occlusion.swift", "covered[y * width + x] += 1", "covered[y * width + x] = 1", 1,
     "PerturbationTests", "occlusion divides by 1 instead of the windows covering a pixel"),
    ("rise_normalisation", "Sources/XAIMethods/RISE.swift", "* Double(masks - half)) / Double(masks)", "* Double(masks - half)) / Double(half)", 1,
     "PerturbationTests", "RISE averages over half the masks"),
    ("smoothgrad_sigma", "Sources/XAIMethods/SmoothGrad.swift", "let sigma = noiseLevel * ((image.max() ?? 0) - (image.min() ?? 0))",
     "let sigma = noiseLevel", 1, "MethodReferenceTests", "SmoothGrad's noise ignores the image's value range"),
    ("gradcampp_alpha", "Sources/XAIMethods/CAMFamily.swift", "try be.scaled(g2, by: 2)", "try be.scaled(g2, by: 3)", 1,
     "MethodReferenceTests", "Grad-CAM++'s alpha denominator"),
    ("cam_upsampling_corners", "Sources/XAIMethods/ExplainedModel.swift",
     "let up = try backend.resizeBilinear(cam, height: input[2], width: input[3], alignCorners: false)",
     "let up = try backend.resizeBilinear(cam, height: input[2], width: input[3], alignCorners: true)", 1, "ReferenceCheckTests",
     "CAM maps are upsampled with aligned corners, unlike pytorch-grad-cam"),
    # Preprocessing
    ("preprocessing_channel_order", "Sources/XAIImage/Preprocessing.swift", "/ 255 - mean[c]) / std[c]", "/ 255 - mean[2 - c]) / std[2 - c]", 1,
     "ReferenceCheckTests", "normalisation with the channel statistics reversed"),
    ("preprocessing_crop_rounding", "Sources/XAIImage/Preprocessing.swift", "let left = Int((Double(pw - width) / 2).rounded(.toNearestOrEven))",
     "let left = Int((Double(pw - width) / 2).rounded(.down))", 1, "ReferenceCheckTests", "the centre crop floors instead of rounding half to even"),
    ("preprocessing_resize_rounding", "Sources/XAIImage/Preprocessing.swift", "let newLong = Int(Double(side * long) / Double(short))",
     "let newLong = Int((Double(side * long) / Double(short)).rounded())", 1, "ReferenceCheckTests",
     "the longer side is rounded, where torchvision truncates"),
    ("pillow_fixed_point_rounding", "Sources/XAIImage/RGBImage.swift", "var acc = 1 << (shift - 1)", "var acc = 0", 1,
     "ExplainCommandTests/testPNGRoundTripAndAntialiasedResize|ReferenceCheckTests/testPreprocessingMatchesTorchvision",
     "the resize truncates where Pillow rounds"),
    # Output writers
    ("overlay_placement", "Sources/XAIImage/Heatmap.swift", "let mx = (Double(x) + 0.5 - placement.left) / placement.width * Double(mapWidth) - 0.5",
     "let mx = (Double(x) + 0.5) / placement.width * Double(mapWidth) - 0.5", 1, "OutputWriterTests",
     "the overlay ignores where the crop starts in the picture"),
    ("npy_shape_order", "Sources/XAICore/NPY.swift", 'tensor.shape.dims.map(String.init).joined(separator: ", ")',
     'tensor.shape.dims.reversed().map(String.init).joined(separator: ", ")', 1, "OutputWriterTests", ".npy files written with the shape reversed"),
    # Batch sizing
    ("last_reads_early", "Sources/XAIGraph/Graph.swift", "if left == 0 { last.append(name) }",
     "if left <= 1 { last.append(name) }", 1, "PerturbationTests/testForwardPeak",
     "the release schedule frees a value one reader early (the forward's peak, and the executor)"),
    ("forward_peak_order", "Sources/XAIMethods/ExplainedModel.swift", "for o in node.outputs where !o.isEmpty { live += bytes(o) }\n            peak = max(peak, live)",
     "peak = max(peak, live)\n            for o in node.outputs where !o.isEmpty { live += bytes(o) }", 1, "PerturbationTests/testForwardPeak",
     "the forward's peak is read before the node's outputs are counted"),
    ("pool_no_eviction", "Sources/XAICPU/CPUBackend.swift", "while cachedBytes + bytes > capacityBytes, !age.isEmpty {",
     "while cachedBytes + bytes > 2 * capacityBytes, !age.isEmpty {", 1, "BufferPoolTests",
     "the CPU buffer pool keeps old sizes past its capacity instead of making room"),
    ("nonfinite_tail_ignored", "Sources/XAICore/Tensor.swift", "if lanes.sum() + tail == 0 { return 0 }", "if lanes.sum() == 0 { return 0 }", 1,
     "ShapeTests/testNonFiniteCount", "the non-finite check skips the values after the last full vector"),
    ("nonfinite_lanes_ignored", "Sources/XAICore/Tensor.swift", "if lanes.sum() + tail == 0 { return 0 }", "if tail == 0 { return 0 }", 1,
     "ShapeTests/testNonFiniteCount", "the non-finite check looks only at the tail"),
    ("dnnl_reference_kernels", "Sources/XAICPU/OneDNN.swift", 'guard !implementationName.hasPrefix("ref") else {',
     'guard !implementationName.hasPrefix("reference") else {', 1, "OneDNNTests/testNoConvolutionRunsOnAReferenceKernel",
     "oneDNN's reference kernels (20x slower than im2col on 8-channel layers) are used"),
    # Metrics
    ("pixel_curve_ties", "Sources/XAIMetrics/PixelCurves.swift", "values[a] > values[b] : a < b", "values[a] > values[b] : a > b", 1,
     "MetricReferenceTests/testDeletionAndInsertion", "deletion/insertion break ties by the larger pixel index"),
    ("pixel_curve_area", "Sources/XAIMetrics/PixelCurves.swift", "- scores[0] / 2 - scores[scores.count - 1] / 2", "- scores[0] / 2", 1,
     "MetricReferenceTests/testDeletionAndInsertion", "the area under the curve counts the last point in full"),
    ("rank_mask_cpu", "Sources/XAICPU/CPUBackend+Masks.swift", "dst[i] = labels[i] < count ? first : rest", "dst[i] = labels[i] <= count ? first : rest", 1,
     "OpCaseTests", "the CPU's rank masks change one pixel too many"),
    ("rank_mask_cl", "Kernels/mask.cl", "const int first = labels[y * W + x] < (float)rects[n];", "const int first = labels[y * W + x] <= (float)rects[n];", 1,
     "OpCaseTests", "OpenCL's rank masks change one pixel too many"),
    ("insertion_blur_reflect", "Sources/XAIMetrics/PixelCurves.swift", "i = i < 0 ? -i - 1 : 2 * size - i - 1", "i = i < 0 ? -i : 2 * size - i - 2", 1,
     "MetricReferenceTests/testInsertionStart", "the insertion blur's kernel reflects about the edge sample (scipy's mirror, not reflect)"),
    ("sparseness_order", "Sources/XAIMetrics/MapMetrics.swift", "map { Double(abs($0)) + 1e-7 }.sorted()", "map { Double(abs($0)) + 1e-7 }.sorted(by: >)", 1,
     "MetricReferenceTests/testMapMetricsMatchQuantus", "the Gini index sorts descending"),
    ("relevance_mass_negative", "Sources/XAIMetrics/Localisation.swift", "for i in a.indices where a[i] > 0 {", "for i in a.indices where a[i] != 0 {", 1,
     "MetricReferenceTests/testLocalisationOnKnownMaps", "relevance mass counts negative attribution"),
    ("sensitivity_unnormalised", "Sources/XAIMetrics/Sensitivity.swift", "ratios.append(norm > 0 ? difference / norm : difference)",
     "ratios.append(difference)", 1, "MetricReferenceTests/testSensitivity", "sensitivity is not relative to the explanation's norm"),
    ("sensitivity_noise_stream", "Sources/XAIMetrics/Sensitivity.swift", "seed &+ 1_000_003 &* UInt64(image) &+ UInt64(sample)",
     "seed &+ UInt64(image) &+ UInt64(sample)", 1, "MetricReferenceTests/testSensitivity", "images share noise streams (image 1's copies reuse image 0's)"),
    # Faithfulness correlation, infidelity, random logit, MPRT, and the pixel-level overlay
    ("faithfulness_drop_sign", "Sources/XAIMetrics/Faithfulness.swift", "let drops = perturbed.map { clean - $0 }",
     "let drops = perturbed.map { $0 - clean }", 1, "FaithfulnessTests/testFaithfulnessCorrelationMatchesQuantus",
     "faithfulness correlation pairs the map with the logit's rise instead of its drop"),
    ("faithfulness_subset_replacement", "Sources/XAIMetrics/Faithfulness.swift", "let j = i + Int(generator.next() % UInt64(pixels - i))",
     "let j = Int(generator.next() % UInt64(pixels))", 1, "FaithfulnessTests/testFaithfulnessCorrelationMatchesQuantus",
     "the subsets' shuffle is biased (not the stream the fixture re-implements)"),
    ("infidelity_unfitted", "Sources/XAIMetrics/Faithfulness.swift", "let beta = aa != 0 ? ab / aa : 0", "let beta = 1.0", 1,
     "FaithfulnessTests/testInfidelityMatchesCaptum", "infidelity without Captum's normalize (beta fitted)"),
    ("infidelity_noise_added", "Sources/XAIMetrics/Faithfulness.swift", "batch[o + p] = image.scalars[i + p] - d[p]",
     "batch[o + p] = image.scalars[i + p] + d[p]", 1, "FaithfulnessTests/testInfidelityMatchesCaptum",
     "infidelity adds the perturbation where Captum's f(x) - f(x - I) subtracts it"),
    ("ssim_population_covariance", "Sources/XAIMetrics/Similarity.swift", "covariance = np / (np - 1)", "covariance = 1.0", 1,
     "FaithfulnessTests/testSimilaritiesMatchScikitImageAndScipy", "SSIM with population instead of sample covariances"),
    ("spearman_tie_ranks", "Sources/XAIMethods/Statistics.swift", "let rank = Double(i + j) / 2", "let rank = Double(i)", 1,
     "FaithfulnessTests/testSimilaritiesMatchScikitImageAndScipy", "Spearman ranks ties by first place instead of their average"),
    ("random_logit_same_class", "Sources/XAIMetrics/Randomisation.swift", "return k >= target ? k + 1 : k", "return k", 1,
     "FaithfulnessTests/testRandomLogitComparesWithAnotherClass", "random logit may compare the target's map with itself"),
    ("mprt_from_the_bottom", "Sources/XAIMetrics/Randomisation.swift", "graph.nodes.reversed().compactMap", "graph.nodes.compactMap", 1,
     "FaithfulnessTests/testModelRandomisationChangesGradCAM", "MPRT randomises from the input instead of the top"),
    ("overlay_pixel_signed", "Sources/XAIImage/Heatmap.swift", "if detail == .pixel { return .absolute }", "", 1,
     "OutputWriterTests/testPixelLevelMapsAreDrawnAsMagnitude", "pixel-level gradient maps drawn signed: they fade to the picture"),
    # KernelSHAP's control variate (CoalitionSurrogate)
    ("surrogate_other_share", "Sources/XAIMethods/CoalitionSurrogate.swift", "other += Double(t) / Double(m - 1) * (b(t + 1) - b(t))",
     "other += b(t + 1) - b(t)", 1, "PerturbationTests/testTheControlVariateIsExactOnGamesOfTheSurrogatesForm",
     "the surrogate's size-varying terms give the other players their change without the chance that the player is in"),
    ("surrogate_own_share", "Sources/XAIMethods/CoalitionSurrogate.swift", "(own / Double(m), other / Double(m))", "(own / Double(m - 1), other / Double(m))", 1,
     "PerturbationTests/testTheControlVariateIsExactOnGamesOfTheSurrogatesForm", "a player's own size-varying share averaged over m - 1 sizes instead of m"),
    ("surrogate_size_share", "Sources/XAIMethods/CoalitionSurrogate.swift", "(uAll - uNone) / Double(m)", "(uAll - uNone) / Double(m - 1)", 1,
     "PerturbationTests/testTheControlVariateIsExactOnGamesOfTheSurrogatesForm|ReferenceCheckTests/testKernelSHAPConvergesToExactShapleyOnANonAdditiveGame",
     "the size function's change shared among m - 1 players"),
    ("surrogate_end_ignores_modulation", "Sources/XAIMethods/CoalitionSurrogate.swift", "let uAll = full - a.reduce(0, +) - b(m) * c.reduce(0, +)",
     "let uAll = full - a.reduce(0, +)", 1, "PerturbationTests/testTheControlVariateIsExactOnGamesOfTheSurrogatesForm",
     "the surrogate misses the full coalition by its size-varying terms, so the residual game is not 0 there"),
    ("surrogate_odd_basis", "Sources/XAIMethods/CoalitionSurrogate.swift", "return x * x", "return x", 1,
     "PerturbationTests/testTheControlVariateIsExactOnGamesOfTheSurrogatesForm",
     "an odd size modulation, whose Shapley share is the same for every player (the surrogate adds nothing)"),
    ("surrogate_too_few_rows", "Sources/XAIMethods/CoalitionSurrogate.swift", "static let rowsPerParameter = 2.0", "static let rowsPerParameter = 0.5", 1,
     "PerturbationTests/testTheControlVariateIsExactOnGamesOfTheSurrogatesForm", "a surrogate fitted with fewer rows than it can follow"),
    ("surrogate_no_ridge", "Sources/XAIMethods/CoalitionSurrogate.swift", "gram[i * p + i] += ridge * meanWeight", "gram[i * p + i] += 0", 1,
     "PerturbationTests/testLeverageSamplingAndTheControlVariateLowerTheErrorAtAFixedBudget",
     "the size-varying effects fitted without their ridge, following the sampling noise where the rows are few"),
    ("surrogate_last_modulation_dropped", "Sources/XAIMethods/CoalitionSurrogate.swift", "                f.append((additive + i, b(s)))",
     "                if i < k { f.append((additive + i, b(s))) }", 1, "PerturbationTests/testKernelSHAPDoesNotDependOnHowTheSegmentsAreNumbered",
     "the last segment has no size-varying effect, so the ridge pulls the others towards it and the answer depends on the numbering"),
    ("surrogate_not_subtracted", "Sources/XAIMethods/KernelSHAP.swift", "zip(y, g.values).map { $0 - $1 }", "y", 1,
     "PerturbationTests/testTheControlVariateIsExactOnGamesOfTheSurrogatesForm",
     "KernelSHAP fits the scores, not the residual, and adds the surrogate's values on top (counted twice)"),
    # --until-stable: rounds of LIME and KernelSHAP
    ("lime_until_stable_ignored", "Sources/XAIMethods/LIME.swift", "} while used < samples && agreement < (untilStable ?? -.infinity)",
     "} while used < samples && agreement < -2", 1, "PerturbationTests/testUntilStableStopsAtASettledRound",
     "LIME ignores --until-stable and always spends the whole budget"),
    ("kernelshap_prefix_counts", "Sources/XAIMethods/KernelSHAP.swift", "for h in hits[..<end] { counts[h] += 1 }",
     "for h in hits where h < k { counts[h] += 1 }", 1, "PerturbationTests/testKernelSHAPPrefixWeightsAreTheSamplersState",
     "an early-stopped KernelSHAP weights its rows with counts from draws it never evaluated"),
    ("kernelshap_leverage_unweighted", "Sources/XAIMethods/KernelSHAP.swift", "importance.append(perDraw[k] / rest[k])",
     "importance.append(1)", 1, "PerturbationTests/testLeverageSamplingAndTheControlVariateLowerTheErrorAtAFixedBudget",
     "leverage sampling without its importance weights (a biased fit)"),
    ("blocked_concat_image_stride", "Sources/XAICPU/CPUBackend+Blocked.swift",
     "(po + image * perImage + offsets[k]).update(from: sources[k] + image * count, count: count)",
     "(po + offsets[k]).update(from: sources[k] + image * count, count: count)", 1, "OneDNNTests/testChannelConcatStaysBlocked",
     "the blocked channel concat writes every image of the batch over the first"),
    ("blocked_concat_unused", "Sources/XAICPU/CPUBackend+Movement.swift", "if let joined = try blockedConcat(inputs, plan) { return joined }", "", 1,
     "OneDNNTests/testChannelConcatStaysBlocked", "concatenated channel blocks leave the blocked layout (two reorders per Fire module)"),
    # The method registry and the C interface's cancellation
    ("registry_ig_cost", "Sources/XAI/MethodRegistry.swift", "forwardEquivalents: Double(2 * c.steps + 3)",
     "forwardEquivalents: Double(2 * c.steps + 1)", 1, "RegistryAndDemoTests/testCostsFollowTheKnobsAndTheModel",
     "Integrated Gradients' cost forgets the completeness check's two forwards"),
    # The facade: knobs declared once, the metric registry, file-system errors (issue 28)
    ("knob_method_range_ignored", "Sources/XAI/MethodRegistry.swift", "try c.validate(spec.knobs, ranges: spec.ranges)", "try c.validate(spec.knobs)", 1,
     "FacadeTests/testEachMethodChecksItsOwnRangeOfAKnob", "a method's narrower range of a knob is not checked (SmoothGrad takes 10M samples)"),
    ("knob_limited_range_bounds", "Sources/XAI/Knobs.swift", "minimum: Double(range.lowerBound), maximum: Double(range.upperBound)",
     "minimum: Double(range.lowerBound), maximum: Double(range.upperBound) + 1", 1, "FacadeTests/testEachMethodChecksItsOwnRangeOfAKnob",
     "a narrowed range lets one more through"),
    ("knob_boolean_from_number", "Sources/XAI/Knobs.swift", "let n = value as? NSNumber, isBoolean(n) { return n.boolValue }",
     "let n = value as? NSNumber { return n.boolValue }", 1, "FacadeTests/testKnobsTakeTheirOwnTypeFromJSONAndSwift",
     "a number is taken for a boolean knob"),
    ("knob_integer_from_fraction", "Sources/XAI/Knobs.swift", "d.isFinite, d == d.rounded(), abs(d) < 9e15", "d.isFinite, abs(d) < 9e15", 1,
     "FacadeTests/testKnobsTakeTheirOwnTypeFromJSONAndSwift", "2.5 steps are taken as 2"),
    ("knob_unset_keeps_value", "Sources/XAI/Knobs.swift", "guard let value = JSONScalar.unwrapped(value) else { root[keyPath: path] = nil; return }",
     "guard let value = JSONScalar.unwrapped(value) else { return }", 1, "FacadeTests/testKnobsTakeTheirOwnTypeFromJSONAndSwift",
     "null does not unset an optional knob"),
    ("parameters_default_override", "Sources/XAI/MethodRegistry.swift", "c.text(knob) ?? spec.defaultValue(knob).map",
     "c.text(knob) ?? MethodConfiguration.defaults[knob].map", 1, "FacadeTests/testRecordedParametersAreTheKnobsTheMethodRead",
     "a result records the knob's default, not the method's (SmoothGrad's 50 samples)"),
    ("parameters_tensor_baseline", "Sources/XAI/MethodRegistry.swift", "parameters[\"baseline\"] = \"tensor\"", "parameters[\"baseline\"] = c.baseline", 1,
     "FacadeTests/testRecordedParametersAreTheKnobsTheMethodRead", "a baseline given as a tensor is recorded as the knob's zero"),
    ("context_baseline_ignored", "Sources/XAI/MethodRegistry.swift", "try context.baseline ?? baselineValue(c, context.preprocessing)",
     "try baselineValue(c, context.preprocessing)", 1, "FacadeTests", "a baseline tensor is ignored for the knob's"),
    ("context_segmentation_ignored", "Sources/XAI/MethodRegistry.swift", "        if let given = context.segmentation { return given }\n", "", 1,
     "FacadeTests", "superpixels given as a label map are ignored for the knobs'"),
    ("metric_group_recomputed", "Sources/XAI/MetricRegistry.swift", "            if done[name] == nil {", "            if true {", 1,
     "FacadeTests/testEveryMetricRunsThroughTheRegistryAsItsOwnCodeScoresIt", "the sensitivity scores re-explain once per score"),
    ("metric_sensitivity_target", "Sources/XAI/MetricRegistry.swift", "target: .index(input.targets[b])", "target: .predicted", 1,
     "FacadeTests/testEveryMetricRunsThroughTheRegistryAsItsOwnCodeScoresIt", "sensitivity re-explains the noisy copies' own top class"),
    ("metric_insertion_direction", "Sources/XAI/MetricRegistry.swift",
     "pixelCurve(.insertion, \"area under the probability as the most relevant pixels are put back into a blurred image\", .higherIsBetter)",
     "pixelCurve(.insertion, \"area under the probability as the most relevant pixels are put back into a blurred image\", .lowerIsBetter)", 1,
     "FacadeTests/testEveryMetricRunsThroughTheRegistryAsItsOwnCodeScoresIt", "the registry says a higher insertion is worse"),
    ("metric_knob_names_lost", "Sources/XAI/MetricRegistry.swift", "parameterNames: [\"runs\": \"faithfulnessRuns\", \"subsetSize\": \"faithfulnessSubset\"]",
     "parameterNames: [:]", 1, "FacadeTests/testMetricKnobErrorsNameTheKnob", "a metric's own check names its parameter, not the knob or flag"),
    ("metric_curve_cost", "Sources/XAI/MetricRegistry.swift", "forwards(Double((pixels + step - 1) / step + 1))", "forwards(Double(pixels / step + 1))", 1,
     "FacadeTests/testMetricKnobErrorsNameTheKnob", "deletion's cost forgets the last partial step"),
    ("metric_all_needs_masks", "Sources/XAI/MetricRegistry.swift", "metrics.filter { masks || !$0.needsMasks }", "metrics", 1,
     "FacadeTests/testMetricKnobErrorsNameTheKnob", "all includes the mask metrics without masks"),
    ("smoothgrad_absolute_signed", "Sources/XAIMethods/SmoothGrad.swift", "let v = absolute ? Swift.abs(g) : g", "let v = g", 1,
     "MethodReferenceTests/testAbsoluteSmoothGradAveragesTheGradientMagnitudes", "SmoothGrad ignores abs and averages the signed gradient"),
    ("filesystem_reason_lost", "Sources/XAICore/FileSystem.swift", "cannot \\(operation): \\(reason(code))", "cannot \\(operation)", 1,
     "FacadeTests/testFileErrorsSayThePathTheOperationAndWhy", "file errors drop the system's reason"),
    ("outputfile_write_unchecked", "Sources/XAICore/FileSystem.swift",
     "if let failed = FileSystem.writeAll(fd, data) { throw FileSystem.failure(path, \"write\", failed) }", "_ = FileSystem.writeAll(fd, data)", 1,
     "FacadeTests", "a full disk under results.jsonl goes unreported"),
    ("precision_fast_ignored", "Sources/XAI/XAI.swift", "convolutionPolicy: precision == .fast ? .auto : nil", "convolutionPolicy: nil", 1,
     "DeterminismTests/testResultsRecordTheirProvenance", "--fast is recorded but changes nothing"),
    ("provenance_precision_wrong", "Sources/XAI/Session.swift", "provenance = Provenance(backend: model.backend, precision: precision)",
     "provenance = Provenance(backend: model.backend, precision: .exact)", 1, "DeterminismTests/testResultsRecordTheirProvenance",
     "results computed fast are recorded as exact"),
    ("gemm_path_by_batch", "Sources/XAICPU/CPUBackend.swift", "let work = Double(plan.n) * Double(plan.k)\n        guard work >= 1024",
     "let work = Double(plan.outputShape.count) * Double(plan.k)\n        guard work >= 65_536", 1, "BatchInvarianceTests",
     "the GEMM's library is chosen by the whole product, so a batch and its images take different paths"),
    ("gemm_small_rows_together", "Sources/XAICPU/CPUBackend.swift", "        if n * k < 1024 {", "        if n * k < 0 {", 1, "BatchInvarianceTests",
     "small products run all rows in one OpenBLAS call, whose kernel depends on the row count"),
    ("gelu_path_by_size", "Sources/XAICPU/CPUBackend.swift", "case .gelu, .geluTanh: return count >= 1", "case .gelu, .geluTanh: return count >= 4096", 1,
     "BatchInvarianceTests", "GELU takes oneDNN's erf for a batch and the scalar one for an image, so their bits differ"),
    ("gemm_tuner_nan_passes", "Sources/XAIOpenCL/GEMMTuning.swift", "            guard g.isFinite else { return .infinity }\n", "", 1,
     "GEMMTuningTests/testTunerCheckRefusesAKernelThatWritesNaN", "the tuner's check lets a NaN-writing kernel through as accurate (issue 33)"),
    ("conv_tuning_ignored", "Sources/XAICPU/CPUBackend.swift", "return tuning?.choices[geometry] != .direct", "return true", 1,
     "ConvolutionTuningTests", "--fast ignores the machine's tuning table"),
    ("conv_tuning_foreign_applied", "Sources/XAICPU/ConvolutionTuning.swift", "tables.last(where: { $0.key == key })", "tables.last", 1,
     "ConvolutionTuningTests", "a table measured on another CPU or oneDNN is applied"),
    ("registry_unchecked_knobs", "Sources/XAI/MethodRegistry.swift", "        try c.validate(spec.knobs, ranges: spec.ranges)\n", "", 1,
     "RegistryAndDemoTests/testKnobsAreDescribedOnceAndChecked", "the registry builds methods without checking knob ranges and choices"),
    ("progress_cannot_cancel", "Sources/XAIMethods/PerturbationEngine.swift", "try progress?(start, count)", "try? progress?(start, count)", 1,
     "RegistryAndDemoTests/testProgressCanCancel", "a progress callback's error is swallowed, so nothing can cancel"),
    ("dnnl_library_scratchpad", "Sources/XAICPU/OneDNN.swift", "dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)",
     "dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_library)", 1, "OneDNNTests/testSharedPrimitivesRunOnOtherThreads",
     "oneDNN keeps each primitive's scratchpad with the thread that made it (a crash when another thread runs it)"),
    ("pool_evicts_newest", "Sources/XAICPU/CPUBackend.swift", "let old = age.removeFirst()", "let old = age.removeLast()", 1, "BufferPoolTests",
     "the CPU buffer pool evicts the buffer returned last instead of the oldest"),
    ("dnnl_weights_one_format", "Sources/XAICPU/CPUBackend+Conv.swift", "static let weightFormatsPerGeometry = 4",
     "static let weightFormatsPerGeometry = 1", 1, "OneDNNTests/testWeightsAreReordered",
     "one cached weight format per layer: Winograd's weights are transformed again whenever the batch size changes"),
    ("smoothgrad_noise_per_chunk", "Sources/XAIMethods/SmoothGrad.swift", "stream: UInt64(b * samples + sample))",
     "stream: UInt64(b * samples + k))", 1, "MethodReferenceTests/testInternalBatchSizeDoesNotChangeResults",
     "SmoothGrad's noise streams restart with every internal batch (the same noise drawn again)"),
    ("gaussian_pair_correlated", "Sources/XAICore/Random.swift", "return (Float(r * cos(angle)), Float(r * sin(angle)))",
     "return (Float(r * cos(angle)), Float(r * cos(angle + 0.1)))", 1, "RandomTests",
     "the second output of a Box-Muller pair is correlated with the first"),
    ("cpu_clip_backward_at_bound", "Sources/CLoops/loops.c", "out[i] = (vi > lo && vi < hi) ? gi : 0.0f;",
     "out[i] = (vi >= lo && vi < hi) ? gi : 0.0f;", 1, "ONNXFixtureTests|OpCaseTests",
     "ReLU6's gradient passes where the output sits exactly on the lower bound"),
    # Session 23: the input gradient by flipped forward convolution, the stem's column product
    ("flipped_weights_not_rotated", "Sources/XAICPU/CPUBackend+Conv.swift", "for t in 0..<kh * kw { dst[t] = src[kh * kw - 1 - t] }",
     "for t in 0..<kh * kw { dst[t] = src[t] }", 1, "OneDNNTests/testInputGradientAsAFlippedForwardConvolution",
     "the flipped-forward input gradient transposes the weights without rotating each kernel"),
    ("flipped_pads_swapped", "Sources/XAICPU/CPUBackend+Conv.swift", "pads: (kh - 1 - p.padTop, kw - 1 - p.padLeft, kh - 1 - p.padBottom, kw - 1 - p.padRight)",
     "pads: (kh - 1 - p.padBottom, kw - 1 - p.padLeft, kh - 1 - p.padTop, kw - 1 - p.padRight)", 1,
     "OneDNNTests/testInputGradientAsAFlippedForwardConvolution", "the flipped convolution pads above by the layer's bottom pad"),
    ("flipped_route_strided", "Sources/XAICPU/CPUBackend+Conv.swift", "guard winogradApplies(plan, dnnl), plan.outputChannels >= 16,",
     "guard plan.outputChannels >= 16,", 1, "OneDNNTests/testInputGradientAsAFlippedForwardConvolution",
     "strided and dilated layers take the flipped-forward route, which only holds at stride 1"),
    ("stem_gather_stride", "Sources/CLoops/loops.c", "if (t < 0 || t % stride_h != 0) continue;", "if (t < 0) continue;", 1,
     "OneDNNTests/testStemInputGradient|OpCaseTests", "the stem's gather takes taps that fall between a strided layer's output rows"),
    ("stem_gather_dilation", "Sources/CLoops/loops.c", "long offset = kx * dilation_w - pad_left;", "long offset = kx - pad_left;", 1,
     "OpCaseTests", "the stem's gather ignores the horizontal dilation"),
    ("stem_image_groups", "Sources/XAICPU/CPUBackend+Conv.swift", "source: gy.pointer + first * paddedOutputs * g.oh * g.ow",
     "source: gy.pointer + first * g.cout * g.oh * g.ow", 1, "OneDNNTests/testStemInputGradient",
     "image groups of the stem's input gradient start at an unpadded channel count"),
    ("stem_columns_transpose", "Sources/XAICPU/CPUBackend+Conv.swift", "for q in 0..<k { out.pointer[q * cout + o] = pw[o * k + q] }",
     "for q in 0..<k { out.pointer[o * k + q] = pw[o * k + q] }", 1, "OneDNNTests/testStemInputGradient|OpCaseTests",
     "the stem's column weights are not transposed"),
    # OpenCL GEMM engines and the tuner
    ("cl_gemm_vector_run_along_k", "Kernels/gemm.cl", "for (int j = 0; j < VW; j++) As[(kk + j) * TILE_STRIDE + r] = v[j];",
     "for (int j = 0; j < VW; j++) As[kk * TILE_STRIDE + r + j] = v[j];", 1, "GEMMTuningTests/testEveryEngine",
     "vector loads of A along K are stored along M in the local tile"),
    ("cl_gemm_transposed_b_run", "Kernels/gemm.cl", "for (int j = 0; j < VW; j++) Bs[(kb + j) * TILE_STRIDE + c] = v[j];",
     "for (int j = 0; j < VW; j++) Bs[kb * TILE_STRIDE + c + j] = v[j];", 1, "GEMMTuningTests/testEveryEngine",
     "a transposed B's runs along K are stored along N in the local tile"),
    ("cl_gemm_double_buffer_no_swap", "Kernels/gemm.cl", "if (DB) cur_ = 1 - cur_;", ";", 1, "GEMMTuningTests/testEveryEngine",
     "double buffering never switches buffers (the next slice overwrites the one being read)"),
    ("cl_gemm_epilogue_bias_axis", "Kernels/gemm.cl", "else if (bias_mode == 2) v += bias[bias_offset + i];",
     "else if (bias_mode == 2) v += bias[bias_offset + j];", 1, "GEMMTuningTests/testEveryEngine",
     "CLBlast's epilogue adds a convolution's bias by column instead of by output channel"),
    ("clblast_transpose", "Sources/XAIOpenCL/OpenCLBackend+CLBlast.swift",
     "if rowStride == 1, cols == 1 || colStride >= rows { return (CLBlastTransposeYes,",
     "if rowStride == 1, cols == 1 || colStride >= rows { return (CLBlastTransposeNo,", 1, "GEMMTuningTests/testEveryEngine",
     "a transposed operand is passed to CLBlast as stored"),
    ("tuner_picks_slowest", "Sources/XAIOpenCL/GEMMTuning.swift", "let winner = passing.min { $0.seconds! < $1.seconds! }",
     "let winner = passing.max { $0.seconds! < $1.seconds! }", 1, "GEMMTuningTests/testTunerChecksAndCaches",
     "the tuner caches the slowest configuration"),
    ("tuner_check_threshold", "Sources/XAIOpenCL/GEMMTuning.swift", "guard error <= 1e-4 else {", "guard error <= 1e4 else {", 1,
     "GEMMTuningTests/testTunerCheckDetects", "the tuner accepts a configuration whose product is wrong"),
    ("tuning_cache_ignores_key", "Sources/XAIOpenCL/GEMMTuning.swift", "entries(in: url).last(where: { $0.key == key })",
     "entries(in: url).last", 1, "GEMMTuningTests/testTunerChecksAndCaches",
     "a winner cached for another device, driver or kernel source is applied"),
    # Incremental occlusion (session 24)
    ("incremental_hi_ignores_pad", "Sources/XAIGraph/IncrementalForward.swift", "hi = floorDiv(b - 1 + pad, stride) + 1",
     "hi = floorDiv(b - 1, stride) + 1", 1, "PerturbationTests/testIncremental",
     "a window's last affected output ignores the padding, so the patch misses a changed row"),
    ("incremental_lo_ignores_dilation", "Sources/XAIGraph/IncrementalForward.swift", "ceilDiv(a + pad - (kernel - 1) * dilation, stride)",
     "ceilDiv(a + pad - (kernel - 1), stride)", 1, "PerturbationTests/testIncremental",
     "a dilated kernel's reach is measured without its dilation"),
    ("incremental_union_drops_extent", "Sources/XAIGraph/IncrementalForward.swift", "max(s.1, a + length)", "max(s.1, a)", 1,
     "PerturbationTests/testIncremental", "the union of two windows forgets the second window's extent"),
    ("incremental_tile_ignores_pad", "Sources/XAIGraph/IncrementalForward.swift",
     "let tiles = WindowSet(tops: win.tops.map { $0 * q.strideH - q.padTop }", "let tiles = WindowSet(tops: win.tops.map { $0 * q.strideH }", 1,
     "PerturbationTests/testIncremental", "a convolution's tile starts where an unpadded layer's would"),
    ("incremental_max_pool_zero_fill", "Sources/XAIGraph/IncrementalForward.swift", "fill: p.kind == .max ? -.infinity : 0", "fill: 0", 1,
     "PerturbationTests/testIncremental", "max pooling's padding in a tile is zero instead of minus infinity"),
    ("incremental_constant_in_space", "Sources/XAIGraph/IncrementalForward.swift", "s.dims.suffix(2).allSatisfy { $0 == 1 }", "true", 1,
     "PerturbationTests/testIncremental", "a constant that varies over the map is applied to patches as if it did not"),
    ("incremental_residual_not_spliced", "Sources/XAIGraph/IncrementalForward.swift", "args[3]?.patch : nil).map { try spliced($0, win) }",
     "args[3]?.patch : nil).map { $0.values }", 1, "PerturbationTests/testIncremental",
     "a residual's patch is added without moving it to the output's windows"),
    ("incremental_never_patches", "Sources/XAIGraph/IncrementalForward.swift", "Double(win.height * win.width) <= fullBeyond", "Double(win.height * win.width) < 0 * fullBeyond", 1,
     "PerturbationTests/testIncremental", "every layer runs on whole maps (exact, but the saving is gone)"),
    ("splice_patch_offset", "Sources/XAICore/Movement.swift", "sourceOffset: i * ps[0] + (y - py) * ps[2] + (x - px),",
     "sourceOffset: i * ps[0] + (y - py) * ps[2],", 1, "PerturbationTests/testIncremental",
     "a patch clipped on the left is read from its first column"),
    ("splice_patch_first", "Sources/XAICore/Movement.swift", "if let (y, rows) = clip(ty, tiles.height, 0, h), let (x, cols) = clip(tx, tiles.width, 0, w) {",
     "if i < 0, let (y, rows) = clip(ty, tiles.height, 0, h), let (x, cols) = clip(tx, tiles.width, 0, w) {", 1,
     "PerturbationTests/testIncremental", "tiles lose the clean map around the patch"),
    ("occlusion_window_not_widened", "Sources/XAIMethods/Occlusion.swift", "tops: rects.map { min($0.top, height - wh) }", "tops: rects.map { $0.top }", 1,
     "PerturbationTests/testIncremental", "windows clipped at the image's bottom edge are not moved inward"),
    # Today's architectures (issue 34): the transformer ops, their gradients and the attention methods
    ("gelu_derivative_reference", "Sources/XAICore/Ops+Evaluation.swift",
     "x * Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()", "Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()", 1,
     "OpCaseTests", "GELU's derivative drops the x of x phi(x)"),
    ("gelu_tanh_cubic", "Sources/XAICore/Ops+Evaluation.swift", "(x + 0.044715 * x * x * x)", "(x + 0.044715 * x * x)", 1,
     "OpCaseTests", "GELU's tanh approximation squares instead of cubing"),
    ("cl_gelu_derivative", "Kernels/elementwise.cl", "+ v * exp(-0.5f * v * v) * 0.39894228040143268f", "+ exp(-0.5f * v * v) * 0.39894228040143268f", 1,
     "OpCaseTests", "GELU's derivative on OpenCL drops the x of x phi(x)"),
    ("cl_erf_code", "Kernels/common.cl", "case 11: return erf(x);", "case 11: return tanh(x);", 1, "OpCaseTests",
     "Erf on OpenCL computes tanh"),
    ("cpu_sqrt_from_output", "Sources/XAICore/Ops+Evaluation.swift", "case .sqrt: return 0.5 / y", "case .sqrt: return 0.5 * y", 1,
     "OpCaseTests", "the square root's derivative from its output multiplies instead of dividing"),
    ("layernorm_backward_term", "Sources/XAICore/Backend+Composites.swift",
     "try binary(.sub, try binary(.sub, g, meanG), try binary(.mul, normalized, meanGX))", "try binary(.sub, g, meanG)", 1,
     "OpCaseTests", "LayerNorm's input gradient drops the variance term"),
    ("layernorm_variance_of_input", "Sources/XAICore/Backend+Composites.swift",
     "try reduce(.mean, try binary(.mul, centred, centred), axes: axes)", "try reduce(.mean, try binary(.mul, x, x), axes: axes)", 1,
     "ArchitectureFixtureTests/testViTDynamo", "LayerNorm's variance is taken about zero instead of the mean"),
    ("matmul_backward_b_untransposed", "Sources/XAICore/Backend+Composites.swift",
     "try batchedMatMul(a, gradOutput, transposeA: true)", "try batchedMatMul(a, gradOutput, transposeA: false)", 1,
     "OpCaseTests", "attention's second operand gets the gradient of an untransposed product"),
    ("matmul_broadcast_slice", "Sources/XAICore/Backend+Composites.swift",
     "let bi = try slice(b3, starts: [i, 0, 0]", "let bi = try slice(b3, starts: [0, 0, 0]", 1,
     "OpCaseTests", "every matrix of a batched product reads the first right-hand matrix"),
    ("integer_division_as_float", "Sources/XAIONNX/ONNXImporter.swift", "if op == .div && n.isInteger(0) && n.isInteger(1)",
     "if op == .div && n.isInteger(0) && n.isInteger(1) && false", 1, "ArchitectureFixtureTests/testShuffleNetTorchScript",
     "integer Div of shape arithmetic divides as floats (ShuffleNet's 57-channel split)"),
    ("mod_sign", "Sources/XAIGraph/HostArithmetic+Evaluation.swift", "return r != 0 && (r < 0) != (a[1] < 0) ? r + a[1] : r", "return r", 1,
     "HostArithmeticTests", "Mod takes the dividend's sign (C's fmod) instead of the divisor's"),
    ("where_swapped", "Sources/XAIGraph/HostArithmetic+Evaluation.swift", "truth($0[0]) ? $0[1] : $0[2]", "truth($0[0]) ? $0[2] : $0[1]", 1,
     "HostArithmeticTests|ArchitectureFixtureTests/testSwin", "Where picks the other branch (Swin's attention mask)"),
    ("cpu_transpose_band", "Sources/XAICPU/CPUBackend+Movement.swift", "let i0 = (item % bands) * band,", "let i0 = (item % bands) * (band - 1),", 1,
     "OpCaseTests", "a tiled transpose's bands of rows overlap and the last rows are never written"),
    ("cpu_transpose_tile_rows", "Sources/CLoops/loops.c", "const long i1 = i0 + T < rows ? i0 + T : rows;",
     "const long i1 = i0 + T - 1 < rows ? i0 + T - 1 : rows;", 1, "OpCaseTests", "a tiled transpose skips the last row of each tile"),
    ("cpu_permute_reorder_strides", "Sources/XAICPU/CPUBackend+Movement.swift", "for (i, axis) in perm.enumerated() { strides[axis] = outStrides[i] }",
     "for (i, axis) in perm.enumerated() { strides[i] = outStrides[axis] }", 1, "OpCaseTests",
     "a permute through oneDNN's reorder writes the inverse permutation"),
    ("scale_fold_bias_unscaled", "Sources/XAIGraph/Graph+Rewrites.swift", "b.scalars.enumerated().map { $0.element * gamma.scalars[$0.offset] }",
     "b.scalars", 1, "ArchitectureFixtureTests/testLayerScale", "a folded layer scale scales the weight but not the bias"),
    ("scale_fold_rows", "Sources/XAIGraph/Graph+Rewrites.swift", "gamma.scalars[$0.offset % columns]", "gamma.scalars[$0.offset / columns % columns]", 1,
     "ArchitectureFixtureTests/testLayerScale", "a folded layer scale scales the weight's rows instead of its columns"),
    ("scale_fold_any_axis", "Sources/XAIGraph/Graph+Rewrites.swift", "productAxis == out.rank - 1, let w", "let w", 1,
     "ArchitectureFixtureTests/testLayerScale", "a scale along another axis than the product's features is folded into its columns"),
    ("roll_fusion_gap", "Sources/XAIGraph/Graph+Rewrites.swift", "head.start == 0, tail.start == head.count, ", "head.start == 0, ", 1,
     "ArchitectureFixtureTests/testRollsSpelled", "two slices that leave a gap are fused into a roll"),
    ("roll_fusion_shared_piece", "Sources/XAIGraph/Graph+Rewrites.swift", "nodes[p].outputs.count == 1, index.onlyReader(value) != nil else",
     "nodes[p].outputs.count == 1 else", 1, "ArchitectureFixtureTests/testRollsSpelled", "a slice that something else reads is fused away into a roll"),
    ("nan_guard_any_producer", "Sources/XAIGraph/Graph+Rewrites.swift", "n.inputs[2] == s, let p = index.producers[s], case .softmax = nodes[p].op else",
     "n.inputs[2] == s else", 1, "HuggingFaceFixtureTests/testNaNGuards", "a NaN guard on something other than a softmax is removed"),
    ("host_where_gradient_dropped", "Sources/XAIGraph/Executor.swift", "case .equal, .less, .greater, .lessOrEqual, .greaterOrEqual, .not, .and, .or, .isNaN, .ceil, .floor:",
     "case .equal, .less, .greater, .lessOrEqual, .greaterOrEqual, .not, .and, .or, .isNaN, .ceil, .floor, .where:", 1,
     "HuggingFaceFixtureTests/testNaNGuards", "a gradient through Where on the host is silently dropped"),
    ("global_pool_first_axis_only", "Sources/XAICore/Backend+Composites.swift", "return Array(2..<shape.rank)", "return [2]", 1,
     "GlobalPoolingTests", "global average pooling averages only the first spatial axis"),
    ("resize_cubic_kernel", "Sources/XAIGraph/Resize.swift", "if d <= 1 { return ((a + 2) * d - (a + 3)) * d * d + 1 }",
     "if d <= 1 { return ((a + 2) * d - (a + 2)) * d * d + 1 }", 1, "ResizeTests", "the cubic kernel's inner piece has a wrong coefficient"),
    ("resize_half_pixel", "Sources/XAIGraph/Resize.swift", "case .halfPixel: return (x + 0.5) / scale - 0.5", "case .halfPixel: return x / scale", 1,
     "ResizeTests", "half_pixel coordinates are taken as asymmetric"),
    ("resize_prefer_floor", "Sources/XAIGraph/Resize.swift", "c == c.rounded(.down) + 0.5 ? c.rounded(.down) : c.rounded()", "c.rounded()", 1,
     "ResizeTests", "nearest rounding prefers the ceiling on ties where ONNX's default prefers the floor"),
    ("resize_exclude_outside_ignored", "Sources/XAIGraph/Resize.swift", "if excludeOutside {", "if false {", 1,
     "ResizeTests", "cubic taps outside the input keep their weights under exclude_outside"),
    ("resize_opset10_rounding", "Sources/XAIONNX/ONNXImporter.swift", "n.opset < 11 ? .floor : .roundPreferFloor", ".roundPreferFloor", 1,
     "ResizeTests", "opset 10's nearest Resize rounds instead of taking the floor"),
    ("conv_policy_auto_winograd_in_gradients", "Sources/XAICPU/OneDNN.swift", "(policy == .auto && !plan.exact)", "policy == .auto", 1,
     "ZooTests/testGradientPassesAreExact", "the default policy runs Winograd in passes a gradient goes through (AVX-512 machines)"),
    ("executor_forward_for_backward_not_exact", "Sources/XAIGraph/Executor.swift", "?? evaluate(node, args, exact: forBackward)",
     "?? evaluate(node, args, exact: false)", 1, "ZooTests/testGradientPassesAreExact",
     "a forward pass kept for backward lets convolutions run inexactly (AVX-512 machines)"),
    ("conv_policy_auto_never_fast", "Sources/XAICPU/OneDNN.swift", "let fast = eligible && (policy == .winograd || (policy == .auto && !plan.exact))",
     "let fast = eligible && policy == .winograd", 1, "ZooTests/testGradientPassesAreExact",
     "the default policy never takes Winograd, forward-only passes included (AVX-512 machines)"),
    ("conv_policy_default_auto", "Sources/XAICPU/CPUBackend.swift", 'environment["XAI_CONV_ALGO"] ?? "direct") ?? .direct',
     'environment["XAI_CONV_ALGO"] ?? "auto") ?? .auto', 1, "ZooTests/testGradientPassesAreExact",
     "the default policy lets forward-only passes take Winograd (AVX-512 machines)"),
    ("roll_source_offset", "Sources/XAICore/Movement.swift", "[(0, s, n - s), (n - s, 0, s)]", "[(0, s, n - s), (s, 0, s)]", 1,
     "OpCaseTests", "the rolled tail is read from the shift instead of the end"),
    ("roll_backward_direction", "Sources/XAIGraph/Executor.swift", "return only(try be.roll(gy, axis: axis, shift: -shift))",
     "return only(try be.roll(gy, axis: axis, shift: shift))", 1, "ArchitectureFixtureTests/testSwin",
     "a roll's gradient is rolled further instead of back"),
    ("roll_fusion_shift", "Sources/XAIGraph/Graph+Rewrites.swift", "op: .roll(axis: tail.axis, shift: tail.count)", "op: .roll(axis: tail.axis, shift: head.count)", 1,
     "ArchitectureFixtureTests/testSwin", "Concat(x[p:], x[:p]) is fused into a roll the other way"),
    ("stepped_slice_gradient_packed", "Sources/XAICore/Movement.swift", "destinationOffset: offset, destinationStrides: spread)",
     "destinationOffset: offset, destinationStrides: strides)", 1, "ArchitectureFixtureTests/testSteppedSlices",
     "a stepped slice's gradient is packed together instead of spread back to the picked positions"),
    ("stepped_slice_start_ignored", "Sources/XAICore/Movement.swift", "sourceOffset: offset, sourceStrides: spread", "sourceOffset: 0, sourceStrides: spread", 1,
     "ArchitectureFixtureTests/testSteppedSlices", "a stepped slice starts at the first element whatever its starts"),
    ("gather_backward_position", "Sources/XAIGraph/Executor.swift", "before[ax] = i\n", "before[ax] = k\n", 1,
     "ArchitectureFixtureTests/testViTDynamo", "a gathered token's gradient goes back to the pick's position, not its index"),
    ("split_equal_pieces", "Sources/XAIGraph/Executor.swift", "let piece = (n + count - 1) / count", "let piece = n / count + 1", 1,
     "ArchitectureFixtureTests/testShuffleNetDynamo", "Split's equal pieces are one too long"),
    ("token_grid_prefix", "Sources/XAIMethods/CAMLayers.swift", "for prefix in 0...min(Self.maxPrefixTokens, t - 2)",
     "for prefix in 0...min(Self.maxPrefixTokens, t - 2) where prefix != 1", 1, "ArchitectureFixtureTests/testTransformerMethods",
     "a ViT's class token is not recognised as one"),
    ("channels_last_permutation", "Sources/XAIMethods/CAMLayers.swift", "return try backend.permute(a, [0, 3, 1, 2])\n",
     "return try backend.permute(a, [0, 3, 2, 1])\n", 1, "ArchitectureFixtureTests/testCAMs", "a channels-last CAM layer is transposed"),
    ("rollout_no_residual", "Sources/XAIMethods/AttentionRollout.swift", "block[r * t + r] += 1", "block[r * t + r] += 0", 1,
     "ArchitectureFixtureTests/testTransformerMethods", "rollout forgets the residual connection's identity"),
    ("gradrollout_no_relu", "Sources/XAIMethods/AttentionRollout.swift",
     "block[i] += max(Double(gradients[base + i]) * Double(probabilities[base + i]), 0)",
     "block[i] += Double(gradients[base + i]) * Double(probabilities[base + i])", 1,
     "ArchitectureFixtureTests/testTransformerMethods", "the gradient-weighted rollout keeps negative evidence"),
    ("rollout_order", "Sources/XAIMethods/AttentionRollout.swift", "for m in blocks[b].reversed()", "for m in blocks[b]", 1,
     "ArchitectureFixtureTests/testTransformerMethods", "rollout multiplies the blocks in the wrong order"),
    ("cpu_layernorm_variance", "Sources/CLoops/loops.c", "const float inv = (float)(1.0 / sqrt(squares / (double)cols + (double)eps));",
     "const float inv = (float)(1.0 / sqrt(squares / (double)(cols - 1) + (double)eps));", 1, "OpCaseTests",
     "LayerNorm on the CPU divides the squares by n - 1 (the unbiased variance)"),
    ("cpu_layernorm_backward_term", "Sources/CLoops/loops.c", "o[j] = fi * (gr[j] * scale[j] - meanG - xhat * meanGX);",
     "o[j] = fi * (gr[j] * scale[j] - meanG);", 1, "OpCaseTests", "LayerNorm's gradient on the CPU drops the variance term"),
    ("cl_layernorm_bias", "Kernels/softmax.cl", "(has_bias ? bias[j] : 0.0f)", "(has_bias ? scale[j] : 0.0f)", 1, "OpCaseTests",
     "LayerNorm on OpenCL adds the scale instead of the bias"),
    ("cl_layernorm_backward_mean", "Kernels/softmax.cl", "dr[j] = inv * (gr[j] * scale[j] - meanG -", "dr[j] = inv * (gr[j] * scale[j] -", 1,
     "OpCaseTests", "LayerNorm's gradient on OpenCL forgets the mean of g s"),
    ("layernorm_plan_leading_axes", "Sources/XAICore/Backend+Composites.swift", "normalized == Set(first..<shape.rank), normalized.count == axes.count",
     "normalized.count == axes.count", 1, "ArchitectureFixtureTests/testLayerNormOverAMiddleAxis", "the LayerNorm primitive takes axes that are not the trailing ones"),
    ("onednn_gelu_tanh", "Sources/XAICPU/OneDNN.swift", "case .gelu: return (dnnl_eltwise_gelu_erf, 0, 0)", "case .gelu: return (dnnl_eltwise_gelu_tanh, 0, 0)", 1,
     "OpCaseTests", "exact GELU on the CPU runs oneDNN's tanh approximation"),
    ("matmul_bias_dropped", "Sources/XAICore/Backend+Composites.swift", "bias: try bias?.reshaped([n]), activation: .identity)",
     "bias: nil, activation: .identity)", 1, "OpCaseTests|ArchitectureFixtureTests/testViT", "a linear layer's fused bias is dropped"),
    ("gelu_fusion_wrong_constant", "Sources/XAIGraph/Graph+Rewrites.swift", "withConstant(half, .mul, 0.5, besides: productOut)",
     "withConstant(half, .mul, 0.5, besides: productOut) || true", 1, "ArchitectureFixtureTests/testGELUFusion",
     "GELU is fused whatever the product's last factor"),
    ("cpu_softmax_exp_polynomial", "Sources/CLoops/loops.c", "    p = p * r + 0.5f;", "    p = p * r + 0.45f;", 1, "OpCaseTests",
     "the CPU's vectorised exp has a wrong second-order coefficient"),
    ("cpu_softmax_backward_rows", "Sources/CLoops/loops.c", "for (long j = 0; j < n; j++) o[j] = yr[j] * (gr[j] - s);",
     "for (long j = 0; j < n; j++) o[j] = yr[j] * gr[j] - s;", 1, "OpCaseTests", "softmax's row gradient on the CPU misplaces a parenthesis"),
    ("einsum_contracted_order", "Sources/XAIGraph/Einsum.swift", "to: batch + contracted + freeB)", "to: batch + contracted.reversed() + freeB)", 1,
     "OpCaseTests", "Einsum lays out several contracted letters in opposite orders in its two operands"),
    ("einsum_gradient_operand_order", "Sources/XAIGraph/Einsum.swift", "return EinsumEquation(inputs: [output] + others, output: term)",
     "return EinsumEquation(inputs: others + [output], output: term)", 1, "OpCaseTests", "Einsum's gradient equation swaps its operands"),
    ("instancenorm_scale_axis", "Sources/XAIGraph/Executor.swift", "Shape([shape[1]] + [Int](repeating: 1, count: shape.rank - 2))",
     "Shape([Int](repeating: 1, count: shape.rank - 2) + [shape[1]])", 1, "ArchitectureFixtureTests/testInstanceNormalization",
     "InstanceNormalization's per-channel scale is laid along the last axis"),
    ("binary_backward_sub_sign", "Sources/XAICore/Backend+Composites.swift", "r[1] = try sum(try scaled(g, by: -1), toShape: b.shape)",
     "r[1] = try sum(g, toShape: b.shape)", 1, "OpCaseTests", "the subtrahend's gradient loses its sign"),
    # oneDNN matmul, shape values, views, LayerNorm fusion (issue 34, second round)
    ("onednn_matmul_alpha_with_bias", "Sources/XAICPU/CPUBackend.swift", "plan.k > 0, alpha == 1 || !bias else", "plan.k > 0 else", 1,
     "OpCaseTests", "oneDNN's output scale (which also scales the bias) is used for alpha with a bias"),
    # (Overlapping strides would not do as mutants: oneDNN refuses them and OpenBLAS runs instead.)
    ("onednn_matmul_transposed_strides", "Sources/XAICPU/OneDNN.swift", "transposed ? (1, rows) : (columns, 1)",
     "transposed ? (columns, 1) : (1, rows)", 1, "OpCaseTests", "operands are read as if the transposes were the other way"),
    ("onednn_matmul_batch_strides", "Sources/XAICPU/OneDNN.swift", "for i in Swift.stride(from: r - 3, through: 0, by: -1) {",
     "for i in 0..<(r - 2) {", 1, "OpCaseTests", "a matmul operand's batch strides grow from the outermost axis in"),
    ("onednn_matmul_activation_dropped", "Sources/XAICPU/CPUBackend.swift", "activation: activation == .identity ? nil : activation))",
     "activation: nil))", 1, "OpCaseTests", "the GEMM's fused activation is not applied"),
    ("shape_values_any_shape", "Sources/XAIGraph/Executor.swift", "        return byShape[shape]\n", "        return byShape.values.first\n", 1,
     "ArchitectureFixtureTests/testShapeArithmetic", "shape arithmetic computed for one batch size is reused for another"),
    ("movement_view_any_order", "Sources/XAICore/Movement.swift", "(c.dims.count == 1 && c.sourceStrides == [1] && c.destinationStrides == [1])",
     "c.dims.count <= 2", 1, "OpCaseTests", "a transpose that reorders two real axes is taken for a view"),
    ("layernorm_fusion_epsilon", "Sources/XAIGraph/Graph+Rewrites.swift", "op: .layerNorm(axis: -axes, epsilon: epsilon.scalars[0])",
     "op: .layerNorm(axis: -axes, epsilon: 1e-5)", 1, "ArchitectureFixtureTests/testLayerNormFusion",
     "the fused LayerNorm takes the default epsilon instead of the graph's"),
    ("layernorm_fusion_bias_dropped", "Sources/XAIGraph/Graph+Rewrites.swift", "                inputs.append(name + \".bias\")\n", "", 1,
     "ArchitectureFixtureTests/testLayerNormFusion|ArchitectureFixtureTests/testViTTorchScriptOpset16", "the fused LayerNorm drops the beta it absorbed"),
    ("layernorm_fusion_extra_reader", "Sources/XAIGraph/Graph+Rewrites.swift", "guard index.readerNodes(d) == [square, i], ",
     "guard ", 1, "ArchitectureFixtureTests/testLayerNormFusion", "a centred value that something else reads is fused away"),
    ("split_gathers_pieces", "Sources/XAIGraph/Graph+Rewrites.swift", "+ zip(ordered, pieces).map { m, piece in",
     "+ zip(ordered, pieces.reversed()).map { m, piece in", 1, "ArchitectureFixtureTests/testViT",
     "each Gather's output takes another index's piece of the Split"),
    ("layernorm_fusion_axes", "Sources/XAIGraph/Graph+Rewrites.swift", "axes.sorted() == Array((-axes.count)...(-1)) else",
     "axes.count == 1 else", 1, "ArchitectureFixtureTests/testLayerNormFusion", "a mean over a non-trailing axis is fused as a LayerNorm"),
    # Batch invariance of the OpenBLAS fallback (issue 29, third round)
    ("fallback_gemm_rows_by_count", "Sources/XAICPU/CPUBackend.swift",
     "            rowBlockGemm(plan.transposeA, plan.transposeB, m, n, k, alpha, pa, plan.lda, pb, plan.ldb, beta, pc, n)",
     "            sgemm(plan.transposeA, plan.transposeB, m, n, k, alpha, pa, plan.lda, pb, plan.ldb, beta, pc, n, parallel: true)", 1,
     "BatchInvarianceTests", "the fallback's GEMM op splits its rows by the row count again"),
    ("fallback_gemm_tail_untransposed", "Sources/XAICPU/CPUBackend.swift", "transA ? pa.value[j * lda + lo + r] : pa.value[(lo + r) * lda + j]",
     "pa.value[(lo + r) * lda + j]", 1, "OpCaseTests", "the fallback's last row block reads a transposed A as if it were not"),
    ("backward_retains_no_node_inputs", "Sources/XAIGraph/Executor.swift", "            read.formUnion(node.inputs)\n", "", 1,
     "ZooTests/testAPassForALateLayersBackwardKeepsWhatItsNodesReadFromOtherBranches", "a pass for a late layer's backward releases what its nodes read"),
    ("backward_retained_ignored", "Sources/XAIGraph/Executor.swift", "!keep.contains(name) && !retained.contains(name) { values[name] = nil }",
     "!keep.contains(name) { values[name] = nil }", 1, "ZooTests/testAPassForALateLayersBackwardRetainsOnlyWhatThatBackwardReads",
     "a pass for a late layer's backward releases every activation"),
    # Modified backward, projection CAMs and GradientSHAP (issue 30, first round)
    ("guided_rule_drops_mask", "Sources/XAIGraph/PropagationRules.swift",
     "return try backend.unary(.relu, try backend.unaryBackward(.relu, gradOutput: gy, value: try value(), valueIsOutput: valueIsOutput))",
     "return try backend.unary(.relu, gy)", 1, "PropagationMethodTests", "guided backpropagation forgets where the unit was active"),
    ("deconvolution_rule_keeps_mask", "Sources/XAIGraph/PropagationRules.swift", "            case .deconvolution:\n                return try backend.unary(.relu, gy)",
     "            case .deconvolution:\n                return try backend.unaryBackward(.relu, gradOutput: try backend.unary(.relu, gy), value: try value(), valueIsOutput: valueIsOutput)", 1,
     "PropagationMethodTests", "deconvolution masks by where the unit was active, as guided backpropagation does"),
    ("fused_relu_ignores_rules", "Sources/XAIGraph/Executor.swift",
     "            let g = try rules.activationBackward(act, gy, on: be, valueIsOutput: true, value: output)\n            var r: [Int: DeviceArray] = [:]",
     "            let g = try PropagationRules.gradient.activationBackward(act, gy, on: be, valueIsOutput: true, value: output)\n            var r: [Int: DeviceArray] = [:]", 1,
     "PropagationMethodTests", "a ReLU fused into a convolution takes the gradient whatever the rules"),
    ("hirescam_drops_gradient", "Sources/XAIMethods/CAMFamily.swift", "        case .hiResCAM:\n            weighted = try be.binary(.mul, a, g)",
     "        case .hiResCAM:\n            weighted = a", 1, "MethodReferenceTests/testCAMFamilyMatchesCaptumAndPytorchGradCam", "HiResCAM sums the activations unweighted"),
    ("eigencam_no_sign_correction", "Sources/XAIMethods/PropagationMethods.swift", "if abs(smallest) > abs(largest) { projection = projection.map { -$0 } }",
     "if abs(smallest) > abs(largest) && false { projection = projection.map { -$0 } }", 1, "PropagationMethodTests",
     "the principal projection keeps LAPACK's arbitrary sign"),
    ("eigencam_not_centred", "Sources/XAIMethods/PropagationMethods.swift", "        mean /= Double(max(p, 1))\n", "        mean = 0\n", 1,
     "PropagationMethodTests", "the activations are projected without centring each channel"),
    ("eigencam_gram_branch_unscaled", "Sources/XAIMethods/PropagationMethods.swift", "for i in 0..<p { projection[i] = sigma * vector.vector[i] }",
     "for i in 0..<p { projection[i] = vector.vector[i] }", 1, "PropagationMethodTests/testFirstPrincipalProjectionAgreesWithPowerIteration",
     "with fewer positions than channels the projection misses its singular value"),
    ("gradientshap_difference_without_noise", "Sources/XAIMethods/PropagationMethods.swift", "differences[k * per + i] = noisy - reference[i]",
     "differences[k * per + i] = image.scalars[i] - reference[i]", 1, "PropagationMethodTests", "GradientSHAP multiplies by the clean input's difference"),
    ("gradientshap_alpha_reversed", "Sources/XAIMethods/PropagationMethods.swift", "points[k * per + i] = alpha * noisy + (1 - alpha) * reference[i]",
     "points[k * per + i] = (1 - alpha) * noisy + alpha * reference[i]", 1, "PropagationMethodTests", "GradientSHAP's path position runs from the input"),
    ("guidedgradcam_nearest_rounds", "Sources/XAIMethods/PropagationMethods.swift", "let rows = (0..<height).map { min(Int((Float($0) * sy).rounded(.down)), h - 1) }",
     "let rows = (0..<height).map { min(Int((Float($0) * sy).rounded()), h - 1) }", 1, "PropagationMethodTests", "nearest upsampling rounds instead of flooring"),
    ("deeplift_maxpool_below_dropped", "Sources/XAIGraph/Executor+Rescale.swift",
     "            let routed = try be.binary(.add, try be.pool2dBackward(try be.binary(.mul, gy, above), input: x, params: params),\n                                       try be.pool2dBackward(try be.binary(.mul, gy, below), input: xr, params: params))",
     "            let routed = try be.pool2dBackward(try be.binary(.mul, gy, above), input: x, params: params)", 1,
     "PropagationMethodTests", "DeepLIFT's max-pool rule drops the share of windows whose maximum fell below the reference's"),
    ("deeplift_fallback_reversed", "Sources/XAIGraph/Executor+Rescale.swift", "abs(d.scalars[i]) < eps ? g.scalars[i] : n.scalars[i] / d.scalars[i]",
     "abs(d.scalars[i]) >= eps ? g.scalars[i] : n.scalars[i] / d.scalars[i]", 1, "PropagationMethodTests",
     "the rescale rule takes the gradient where the input moved and divides where it did not"),
    ("deeplift_product_allowed", "Sources/XAIGraph/Executor+Rescale.swift",
     "return needed.count > 1 ? \"a product of two activations has no rescale rule\" : nil", "return nil", 1,
     "PropagationMethodTests/testWhatTheMethodsRefuse", "DeepLIFT passes a product of two activations by its gradient"),
    ("unfusing_keeps_activation", "Sources/XAIGraph/Graph+Rewrites.swift", "                product.op = .conv(p, activation: .identity, autoPad: autoPad)\n",
     "", 1, "PropagationMethodTests", "unfusing leaves the convolution's activation in place (applied twice)"),
    # LRP (issue 30): Zennit's rules and composites
    ("lrp_zplus_negative_term_dropped", "Sources/XAIGraph/LRP.swift",
     "                return try terms([(false, g, .plus), (true, g, .minus)])",
     "                return try terms([(false, g, .plus)])", 1, "PropagationMethodTests/testLRPMatchesZennit",
     "z+ drops the negative inputs' term"),
    ("lrp_gamma_masks_swapped", "Sources/XAIGraph/LRP.swift", "let gp = try divided(try times(r, try be.indicator(plain, positive: true)), by: up, stabilizer: s)",
     "let gp = try divided(try times(r, try be.indicator(plain, positive: false)), by: up, stabilizer: s)", 1,
     "PropagationMethodTests/testLRPMatchesZennit", "the gamma rule's positive part takes the negative outputs"),
    ("lrp_stabilizer_unsigned", "Sources/CLoops/loops.c", "out[i] = r[i] / (zi + (zi >= 0.0f ? s : -s));", "out[i] = r[i] / (zi + s);", 1,
     "PropagationMethodTests/testLRPMatchesZennit", "the CPU's stabilised division adds the stabiliser without the denominator's sign"),
    ("lrp_stabilizer_composed_unsigned", "Sources/XAICore/Backend+Composites.swift", "let offset = try adding(-s, to: try scaled(step, by: 2 * s))",
     "let offset = try adding(s, to: try scaled(step, by: 0))", 1,
     "PropagationMethodTests/testLRPMatchesZennit", "the composed stabilised division (OpenCL) adds the stabiliser without the sign"),
    ("lrp_every_activation_non_negative", "Sources/XAIGraph/LRP.swift", "            case .clip(let low, _): return low >= 0\n            default: return false",
     "            case .clip(let low, _): return low >= 0\n            default: return true", 1,
     "ArchitectureFixtureTests/testTransformerMethodsMatchTheirReferences", "every activation's output counts as non-negative (GELU's negative part dropped from z+)"),
    ("lrp_flat_keeps_bias", "Sources/XAIGraph/LRP.swift", "try z(ones, w, rule == .flat ? nil : .square)",
     "try z(ones, w, rule == .flat ? .unchanged : .square)", 1, "PropagationMethodTests/testLRPMatchesZennit",
     "the flat rule keeps the layer's bias"),
    ("lrp_negative_terms_always_skipped", "Sources/XAIGraph/LRP.swift", "            let parts = (positive: positive, negative: hasNegative ? try be.binary(.sub, x, positive) : nil)",
     "            let parts = (positive: positive, negative: nil as DeviceArray?)", 1, "PropagationMethodTests/testLRPMatchesZennit",
     "the negative inputs' terms are skipped even where the input has negative values"),
    ("lrp_zbox_bounds_swapped", "Sources/XAIGraph/LRP.swift", "let (l, h) = (try bound(low), try bound(high))", "let (l, h) = (try bound(high), try bound(low))", 1,
     "PropagationMethodTests/testLRPMatchesZennit", "the z-box rule swaps its lower and upper bounds"),
    ("lrp_pooling_by_gradient", "Sources/XAIGraph/LRP.swift", "            case .globalAveragePool:\n                rules[node.name] = .norm\n", "", 1,
     "PropagationMethodTests/testLRPMatchesZennit", "global average pooling takes its gradient instead of the norm rule"),
    ("lrp_no_first_layer_rule", "Sources/XAIGraph/LRP.swift", "if !firstSeen && (self == .epsilonPlusFlat", "if false && (self == .epsilonPlusFlat", 1,
     "PropagationMethodTests/testLRPMatchesZennit", "the composites' first-layer rules are never used"),
    ("lrp_seed_one_hot", "Sources/XAIMethods/PropagationMethods.swift", "for (b, c) in targets.enumerated() { p[b * classes + c] = logits.scalars[b * classes + c] }",
     "for (b, c) in targets.enumerated() { p[b * classes + c] = 1 }", 1, "PropagationMethodTests", "LRP's output relevance is 1, not the logit"),
    ("c_progress_only_one_cancels", "Sources/XAIC/CInterface.swift", "if fn(Int64(done), Int64(total), user) != 0 {",
     "if fn(Int64(done), Int64(total), user) == 1 {", 1, C_TESTS,
     "only a progress callback returning 1 cancels, where the header says any non-zero value does"),
    ("gemm_cache_unfit_entry_applied", "Sources/XAIOpenCL/GEMMTuning.swift",
     ",\n               hit.config.problem(maxWorkGroupSize: info.maxWorkGroupSize, localMemoryBytes: info.localMemoryBytes) == nil {",
     " {", 1, "GEMMTuningTests/testTunerChecksAndCachesOnlyCorrectWinners",
     "a cached GEMM configuration the device cannot run is applied anyway"),
    ("sparseness_signed", "Sources/XAIMetrics/MapMetrics.swift", "map { Double(abs($0)) + 1e-7 }", "map { Double($0) + 1e-7 }", 1,
     "MetricPropertyTests", "sparseness takes the signed map, not its magnitudes"),
    ("complexity_signed", "Sources/XAIMetrics/MapMetrics.swift", "let a = mapValues(maps, b, pixels: h * w).map { Double(abs($0)) }",
     "let a = mapValues(maps, b, pixels: h * w).map { Double($0) }", 1, "MetricPropertyTests",
     "complexity's distribution takes the signed map, not its magnitudes"),
    ("relevance_mass_raw_sum", "Sources/XAIMetrics/Localisation.swift", "for i in a.indices where a[i] > 0 {", "for i in a.indices {", 1,
     "MetricPropertyTests", "relevance mass sums the raw signed map (Quantus's form) instead of its positive part"),
    ("guided_fused_loop_ignores_activity", "Sources/CLoops/loops.c", "const float t = yi > 0.0f ? gi : 0.0f;", "const float t = gi;", 1,
     "PropagationMethodTests/testGuidedBackpropDeconvolutionAndGuidedGradCAMMatchCaptum",
     "the CPU's fused guided rule passes positive signal through inactive units too (deconvolution's rule)"),
    ("lrp_residual_all_to_branch", "Sources/XAIGraph/LRP.swift", "            r = try times(branch, share)\n",
     "            _ = branch\n", 1, "PropagationMethodTests/testLRPMatchesZennit",
     "a residual sum gives the branch all the relevance instead of its share"),
    ("ablationcam_weight_unnormalised", "Sources/XAIMethods/PropagationMethods.swift",
     "weights[start + k] = (original - scores.scalars[k * classes + targets[b]]) / original",
     "weights[start + k] = original - scores.scalars[k * classes + targets[b]]", 1, "PropagationMethodTests/testAblationCAMMatchesPytorchGradCam",
     "Ablation-CAM's weights are not divided by the original score"),
    ("ablationcam_wrong_channel", "Sources/XAIMethods/PropagationMethods.swift", "                    let channel = start + k\n",
     "                    let channel = k\n", 1, "PropagationMethodTests/testAblationCAMMatchesPytorchGradCam",
     "Ablation-CAM ablates the batch's k-th channel instead of the k-th channel overall"),
    ("fullgrad_no_bias_terms", "Sources/XAIMethods/PropagationMethods.swift", "        for layer in layers {\n            guard let g = grads[layer.value]",
     "        for layer in layers.prefix(0) {\n            guard let g = grads[layer.value]", 1, "PropagationMethodTests/testFullGradMatchesPytorchGradCam",
     "FullGrad leaves out the bias terms"),
    ("fullgrad_unscaled_maps", "Sources/XAIMethods/PropagationMethods.swift", "out[b * h * w + p] += (v - low) / (1e-7 + high)",
     "out[b * h * w + p] += v", 1, "PropagationMethodTests/testFullGradMatchesPytorchGradCam", "FullGrad sums its maps without scaling each"),
    # (A batch norm's bias taken as its beta would be equivalent: FullGrad scales each channel's
    # |bias x gradient| map to [0, 1] on its own, so only a bias of exactly 0 changes the map.)
    ("fullgrad_batchnorm_left_out", "Sources/XAIGraph/Graph+Rewrites.swift",
     "                layers.append((node.outputs[0], try batchNormAffine(scale, beta, mean, variance, eps).1))\n", "", 1,
     "PropagationMethodTests/testFullGradMatchesPytorchGradCam", "a batch norm of its own is left out of FullGrad's bias layers"),
    ("attnlrp_uniform_not_shared", "Sources/XAIGraph/Executor.swift", "let share = try be.filled([1], value: 1 / Float(operands))",
     "let share = try be.filled([1], value: 1)", 1, "ArchitectureFixtureTests/testAttnLRPMatchesLXT",
     "the uniform rule gives each operand of a product of two activations the whole gradient"),
    ("attnlrp_identity_rule_is_gradient", "Sources/XAIGraph/Executor+AttnLRP.swift",
     "            case .clip, .leakyRelu, .sigmoid, .tanh, .silu, .hardSigmoid, .hardSwish, .gelu, .geluTanh:\n                return .identity",
     "            case .clip, .leakyRelu, .sigmoid, .tanh, .silu, .hardSigmoid, .hardSwish, .gelu, .geluTanh:\n                return .gradient", 1,
     "ArchitectureFixtureTests/testAttnLRPMatchesLXT", "activations take their gradient instead of the identity rule"),
    ("attnlrp_norm_deviation_differentiated", "Sources/XAIGraph/Executor+AttnLRP.swift",
     "return needed == [0] ? .normalization :", "return needed == [0] ? .gradient :", 1,
     "ArchitectureFixtureTests/testAttnLRPMatchesLXT", "normalisations take their gradient (the deviation differentiated)"),
    ("attnlrp_held_deviation_mean_kept", "Sources/XAICore/Backend+Composites.swift",
     "return try binary(.div, try binary(.sub, g, try reduce(.mean, g, axes: axes)), deviation)",
     "return try binary(.div, g, deviation)", 1, "ArchitectureFixtureTests/testAttnLRPMatchesLXT",
     "the held-deviation norm backward forgets the mean's gradient"),
    ("cplrp_attention_not_held", "Sources/XAIMethods/TransformerMethods.swift",
     "case .conservative: return TransformerRules(heldConstant: Set(model.attentionSoftmaxes().map { model.graph.nodes[$0].name }))",
     "case .conservative: return TransformerRules()", 1, "ArchitectureFixtureTests/testAttnLRPMatchesLXT",
     "CP-LRP lets the gradient through the attention's softmax"),
    ("cplrp_held_values_still_depend", "Sources/XAIGraph/Executor.swift", "&& !heldConstant.contains(node.name)\n", "\n", 1,
     "ArchitectureFixtureTests/testAttnLRPMatchesLXT", "a held-constant node's output still counts as depending on the input"),
    ("chefer_residual_share_dropped", "Sources/XAIGraph/LRP.swift",
     "for i in node.inputs.indices where !node.inputs[i].isEmpty && graph.initializers[node.inputs[i]] == nil {",
     "for i in needed where graph.initializers[node.inputs[i]] == nil {", 1, "ArchitectureFixtureTests/testTransformerMethodsMatchTheirReferences",
     "a residual the backward does not continue through takes no share of a normalised sum"),
    ("chefer_product_unshared", "Sources/XAIGraph/LRP.swift", "rules[node.name] = needed.count > 1 ? .product(share: 0.5) : .pass",
     "rules[node.name] = needed.count > 1 ? .product(share: 1) : .pass", 1, "ArchitectureFixtureTests/testTransformerMethodsMatchTheirReferences",
     "transformer attribution's products give each operand the whole relevance"),
    ("chefer_zplus_keeps_bias", "Sources/XAIGraph/LRP.swift", "try pair(.plus, rule == .zPlus ? .plus : nil, .minus)",
     "try pair(.plus, .plus, .minus)", 1, "ArchitectureFixtureTests/testTransformerMethodsMatchTheirReferences",
     "z+ without bias keeps the positive bias in its denominator"),
    ("chefer_normalized_sum_plain_share", "Sources/XAIGraph/LRP.swift",
     "let factor = own == 0 || magnitudes[b] == 0 ? 0 : abs(own) / magnitudes[b] * relevanceTotals[b] / own", "let factor = 1.0", 1,
     "ArchitectureFixtureTests/testTransformerMethodsMatchTheirReferences", "the normalised sum keeps each summand's x R / z unscaled"),
    # Contracts at the C boundary and the OpenCL buffer guards (issue 33)
    ("c_alignment_unchecked", "Sources/XAIC/CInterface.swift", "guard Int(bitPattern: pointer) % alignment == 0 else {",
     "guard Int(bitPattern: pointer) % 1 == 0 else {", 1, C_TESTS, "a misaligned float or int64_t array is read as if aligned"),
    ("c_evaluation_meta_drops_nulls", "Sources/XAIC/CInterface.swift", "try c.encode(standardError, forKey: .standardError)",
     "try c.encodeIfPresent(standardError, forKey: .standardError)", 1, C_TESTS, "an undefined standard error is left out of the metadata"),
    ("c_evaluate_progress_starts_at_metrics", "Sources/XAIC/CInterface.swift", "if o.maps != nil { try report?(0, 1) }", "_ = o.maps", 1,
     C_TESTS, "evaluate with maps given starts its progress at (0, metrics)"),
    ("cl_buffer_guard_blind", "Sources/XAIOpenCL/OpenCLBackend.swift", "if let first = words.firstIndex(where: { $0 != canary }) {",
     "if let first = words.firstIndex(where: { $0 != canary && $0 != canary }), first < 0 {", 1, "BufferGuardTests",
     "the buffer guards never report a changed canary"),
    ("cl_buffer_guard_one_canary", "Sources/XAIOpenCL/OpenCLBackend.swift", "return 0xF100_0000 | (count & 0xF_FFFF)", "return 0x7FC0_DEAD", 1,
     "BufferGuardTests", "one NaN canary for every buffer (survives NaN arithmetic and copies between guards)"),
    # Runs over files for a worker of a larger run (issue 31)
    ("jobs_stems_not_numbered", "Sources/XAIJobs/Inputs.swift", "while used.contains(stem) { stem = \"\\(base)-\\(k)\"; k += 1 }",
     "_ = k", 1, "CLIHelperTests", "two files of the same name share one output folder"),
    ("jobs_given_stems_ignored", "Sources/XAIJobs/ExplainJob.swift",
     "let base = setup.stems.map { PreparedImage.stem($0[index], image: b, of: images.count) } ?? image.stem", "let base = image.stem", 1, C_TESTS,
     "the folders a driver names are ignored"),
    ("jobs_cancel_ignored", "Sources/XAIJobs/ExplainJob.swift", "if let onProgress, onProgress(group.upperBound, setup.files.count) {",
     "if let onProgress, onProgress(group.upperBound, setup.files.count), group.isEmpty {", 1, C_TESTS,
     "a run over files does not stop when its progress callback asks"),
    ("c_explain_files_stems_escape", "Sources/XAIC/CInterface.swift", "$0.isEmpty || $0 == \".\" || $0 == \"..\" || $0.contains(\"/\")",
     "$0.isEmpty || $0 == \".\"", 1, C_TESTS, "a stem may climb out of the output folder"),
    ("cpu_thread_budget_ignores_omp", "Sources/XAICPU/CPUBackend.swift", "[environment[\"XAI_THREADS\"], environment[\"OMP_NUM_THREADS\"]]",
     "[environment[\"XAI_THREADS\"]]", 1, "OneDNNTests/testThreadBudgetFollowsTheCoresTheProcessWasGiven",
     "the engine's loops take every core when Ray gave the actor one"),
    # Device noise, running sums, device-resident SmoothGrad and IG, fused residuals (issue 32)
    ("philox_multiplier", "Sources/XAICore/CounterRandom.swift", "UInt64(0xD251_1F53) &* UInt64(c0)", "UInt64(0xD251_1F51) &* UInt64(c0)", 1,
     "CounterRandomTests", "a wrong Philox multiplier: not Random123's stream"),
    ("box_muller_quadrant", "Sources/XAICore/CounterRandom.swift", "case 1: return (r * -s, r * c)", "case 1: return (r * s, r * c)", 1,
     "CounterRandomTests", "the second quadrant's cosine has the wrong sign"),
    ("log_unit_exponent", "Sources/XAICore/CounterRandom.swift", "return fe * 0.69314575 + (series + fe * 1.4286068e-06)",
     "return fe * 0.69314575 + series", 1, "CounterRandomTests", "ln 2's low part is dropped: radii off by 1.4e-6 per octave"),
    ("running_sum_compensation", "Sources/XAICore/CounterRandom.swift", "c += (s - t) + v } else", "c += (s - t) - v } else", 1,
     "CounterRandomTests", "the compensation subtracts the value it should add back"),
    ("cl_philox_weyl", "Kernels/random.cl", "k.y += 0xBB67AE85u;", "k.y += 0xBB67AE84u;", 1, "CounterRandomTests",
     "the OpenCL generator bumps the key by another constant: other bits than the CPU's"),
    ("cl_noise_stream_carry", "Kernels/random.cl", "(((ulong)stream_hi << 32) | (ulong)stream_lo) + (ulong)k",
     "(ulong)(stream_lo + (uint)k)", 1, "CounterRandomTests", "the OpenCL stream number loses its high word and carry"),
    ("cl_running_sum_squares", "Kernels/random.cl", "neumaier(&q, &qc, v * v);", "neumaier(&q, &qc, v);", 1, "CounterRandomTests",
     "the OpenCL running sum adds values where squares belong"),
    ("cpu_noise_unit_stream", "Sources/XAICPU/CPUBackend+Noise.swift", "stream: plan.firstStream &+ UInt64(k))", "stream: plan.firstStream)", 1,
     "CounterRandomTests", "every CPU copy draws the same stream"),
    ("smoothgrad_stream_restarts", "Sources/XAIMethods/SmoothGrad.swift", "firstStream: UInt64(b * samples + start))",
     "firstStream: UInt64(b * samples))", 1, "DeviceResidencyTests", "each batch of noisy copies restarts the image's streams"),
    ("smoothgrad_vargrad_sign", "Sources/XAIMethods/SmoothGrad.swift", "statistic = try be.binary(.sub, try be.runningMean(state, count: samples, squares: true)",
     "statistic = try be.binary(.add, try be.runningMean(state, count: samples, squares: true)", 1, "MethodReferenceTests|DeviceResidencyTests",
     "VarGrad adds the squared mean"),
    ("device_seed_column", "Sources/XAIMethods/ExplainedModel.swift", "before: [0, t], after: [0, classes - 1 - t]",
     "before: [0, classes - 1 - t], after: [0, t]", 1, "MethodReferenceTests", "the seed made on the device selects the mirrored class"),
    ("ig_weights_added", "Sources/XAIMethods/GradientMethods.swift", "try be.runningSum(try be.binary(.mul, g, w)", "try be.runningSum(try be.binary(.add, g, w)", 1,
     "MethodReferenceTests", "IG adds its quadrature weights to the gradients"),
    ("cl_gemm_rows_residual_column", "Kernels/gemm.cl", "if (has_res) v += R[gm * ldc + n0 + j];", "if (has_res) v += R[gm * ldc + n0];", 1,
     "OpCaseTests|LaunchTests", "the fused residual reads one column per 16"),
    ("cl_conv_residual_dropped", "Sources/XAIOpenCL/OpenCLBackend+Ops.swift", "bias: bm, biasOffset: g * coutG, biasMode: 2, residual: rm,",
     "bias: bm, biasOffset: g * coutG, biasMode: 2, residual: nil,", 1, "OpCaseTests|LaunchTests", "im2col convolutions drop the skip connection"),
    ("cl_staging_piece_offset", "Sources/XAIOpenCL/OpenCLBackend.swift", "if toDevice { pinnedHost.copyMemory(from: caller + offset, byteCount: n) }",
     "if toDevice { pinnedHost.copyMemory(from: caller, byteCount: n) }", 1, "LaunchTests",
     "an upload longer than the pinned buffer sends its first piece again and again"),
    ("cl_gemm_subblock_stride", "Kernels/gemm.cl", "const float4 a4 = vload4(0, (as) + kk * TILE_STRIDE + ty * 4 + q * (RTS * 4));",
     "const float4 a4 = vload4(0, (as) + kk * TILE_STRIDE + ty * 4 + q * RTS);", 1, "GEMMTuningTests",
     "the sub-blocked GEMM reads its second run of rows from the wrong place"),
    ("oom_batch_not_halved", "Sources/XAIMethods/ExplainedModel.swift", "} catch XAIError.outOfMemory where range.count > 1 {",
     "} catch XAIError.outOfMemory where range.count > 1_000_000 {", 1, "DeviceResidencyTests",
     "a batch the device cannot hold fails the explanation instead of being halved"),
    # Implicit-GEMM convolutions (issue 32, item 4)
    ("cl_implicit_rows_run_offset", "Kernels/gemm.cl", "bv = vload16(0, xr + ix);", "bv = vload16(0, xr + ix + 1);", 1,
     "ImplicitConvolutionTests", "the rows kernel's unit-stride run starts one pixel late"),
    ("cl_implicit_rows_stride2_run", "Kernels/gemm.cl", "bv = (float16)(lo.even, hi.even);", "bv = (float16)(lo.odd, hi.odd);", 1,
     "ImplicitConvolutionTests", "the rows kernel's stride-2 runs take the odd inputs"),
    ("cl_implicit_rows_gather_stride", "Kernels/gemm.cl", "const int xx = ix + j * SW;", "const int xx = ix + j;", 1,
     "ImplicitConvolutionTests", "the rows kernel gathers a strided layer's taps at unit stride"),
    ("cl_implicit_rows_forward_padding_row", "Kernels/gemm.cl", "const bool row_inside = iy >= 0 && iy < H;", "const bool row_inside = iy < H;", 1,
     "ImplicitConvolutionTests", "the rows kernel reads above the image where the padding is"),
    ("cl_implicit_rows_backward_tap_order", "Kernels/gemm.cl", "for (int i = 0; i < CPU_ROWS; i++) acc[i] += select((float16)(0.0f), t[i], valid);",
     "for (int i = 0; i < CPU_ROWS; i++) acc[i] = select((float16)(0.0f), t[i], valid) + acc[i] * 1.0000001f;", 1,
     "ImplicitConvolutionTests", "the rows kernel's input gradient adds its taps with another rounding than col2im"),
    ("cl_implicit_rows_backward_weight_tap", "Kernels/gemm.cl", "(m0 + min(i, rows - 1)) * taps + ky * KW + kx;", "(m0 + min(i, rows - 1)) * taps + kx * KW + ky;", 1,
     "ImplicitConvolutionTests", "the rows kernel's input gradient reads the transposed kernel tap"),
    ("cl_implicit_tiled_tap_decomposition", "Kernels/gemm.cl", "const int ci = gk / taps, t = gk - ci * taps, ky = t / KW, kx = t - ky * KW;",
     "const int ci = gk / taps, t = gk - ci * taps, ky = t / KH, kx = t - ky * KH;", 1, "ImplicitConvolutionTests",
     "the tiled kernel splits a tap by the kernel's height (rectangular kernels read the wrong taps)"),
    ("cl_implicit_tiled_image_stride", "Kernels/gemm.cl", "const int img = gn / plane, at = (img * CO + co) * plane + gn - img * plane;",
     "const int img = gn / plane, at = (img * coutG + co) * plane + gn - img * plane;", 1, "ImplicitConvolutionTests",
     "the tiled kernel stores the images of a grouped layer at one group's stride"),
    ("cl_implicit_tiled_backward_unreached_taps", "Kernels/gemm.cl",
     "if (tap_output(p / W, PT, ky, DH, SH, OH) < 0 || tap_output(p % W, PL, kx, DW, SW, OW) < 0) continue;",
     "if (tap_output(p / W, PT, ky, DH, SH, OH) < 0) continue;", 1, "ImplicitConvolutionTests",
     "the tiled input gradient adds the sums of horizontally unreached taps (NaN where a weight is infinite)"),
    ("cl_implicit_rows_backward_unmasked", "Kernels/gemm.cl", "for (int i = 0; i < CPU_ROWS; i++) acc[i] += select((float16)(0.0f), t[i], valid);",
     "for (int i = 0; i < CPU_ROWS; i++) acc[i] += t[i];", 1, "ImplicitConvolutionTests",
     "the rows input gradient adds the lanes of pixels a tap does not reach (NaN where a weight is infinite)"),
    ("cl_implicit_tiled_dy_channel", "Kernels/gemm.cl", "if (oy >= 0 && ox >= 0) v = gyg[(img * CO + co) * plane + oy * OW + ox];",
     "if (oy >= 0 && ox >= 0) v = gyg[(img * CO + co) * plane + ox * OH + oy];", 1, "ImplicitConvolutionTests",
     "the tiled input gradient reads the output gradient transposed"),
    ("cl_implicit_group_offset", "Kernels/gemm.cl", "__global const float* xg = x + (n * C + g * cinG) * H * W;",
     "__global const float* xg = x + (n * C) * H * W;", 1, "ImplicitConvolutionTests", "every group of the rows kernel reads the first group's channels"),
    ("lowering_table_direction", "Sources/XAIOpenCL/KernelTunables.swift", "return backward ? choice.backward : choice.forward",
     "return backward ? choice.forward : choice.backward", 1, "ImplicitConvolutionTests", "the tuned table's forward choice is applied backward"),
    ("lowering_default_stride", "Sources/XAIOpenCL/KernelTunables.swift", "guard plan.params.strideH == 1 && plan.params.strideW == 1 else { return .im2col }",
     "guard plan.params.strideH == 1 else { return .im2col }", 1, "ImplicitConvolutionTests",
     "layers strided along the width take the implicit kernels by default"),
    ("implicit_clblast", "Sources/XAIOpenCL/OpenCLBackend+Ops.swift", "guard tunables.gemm.engine != .clblast, !plan.isDepthwise",
     "guard !plan.isDepthwise", 1, "ImplicitConvolutionTests", "CLBlast's engine takes the implicit kernels (not its own GEMM)"),
    ("perturbation_oom_not_halved", "Sources/XAIMethods/PerturbationEngine.swift", "} catch XAIError.outOfMemory where range.count > 1 {",
     "} catch XAIError.outOfMemory where range.count > 1_000_000 {", 1, "DeviceResidencyTests",
     "a batch of perturbed copies the device cannot hold fails the explanation instead of being halved"),
    ("winograd_input_transform", "Kernels/conv.cl", "e[3][s] = d[1][s] - d[3][s];", "e[3][s] = d[1][s] + d[3][s];", 1,
     "ImplicitConvolutionTests", "Winograd's input transform adds the tile's last row where B^T subtracts it"),
    ("winograd_output_tile", "Kernels/conv.cl", "const int n = p / (TH * TW), t = p % (TH * TW), oy0 = (t / TW) * 2, ox0 = (t % TW) * 2;",
     "const int n = p / (TH * TW), t = p % (TH * TW), oy0 = (t % TW) * 2, ox0 = (t / TW) * 2;", 1, "ImplicitConvolutionTests",
     "Winograd's output tiles are placed transposed (square outputs only look right)"),
    ("winograd_chunk_offset", "Kernels/conv.cl", "__global const float* xc = x + ((long)(n0 + n) * C + c) * H * W;",
     "__global const float* xc = x + ((long)n * C + c) * H * W;", 1, "ImplicitConvolutionTests",
     "every chunk of images after the first transforms the first chunk's tiles"),
    ("winograd_exact_pass", "Sources/XAIOpenCL/OpenCLBackend+Ops.swift", "return fastConvolutions && !plan.exact && plan.weight[2] == 3",
     "return fastConvolutions && plan.weight[2] == 3", 1, "ImplicitConvolutionTests",
     "gradient passes take Winograd too (their activations are differentiated: not the exact bits)"),
    ("perturbation_score_column", "Sources/XAIMethods/PerturbationEngine.swift", "starts: [0, target], sizes: [rows, 1])",
     "starts: [0, 0], sizes: [rows, 1])", 1, "PerturbationTests", "perturbed copies are scored on class 0, not the target"),
]

def run(cmd, cwd, log=None):
    with open(log or os.devnull, "w") as f:
        return subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT).returncode


def copy_tree():
    """The working tree (sources, tests, fixtures) into TREE, keeping TREE's own build folder.

    A sync, not a fresh copy: files whose bytes did not change are left alone, because the build
    system fingerprints a file by its inode as well as its time, and a fresh copy rebuilds everything."""
    os.makedirs(TREE, exist_ok=True)
    skip = lambda name: name.startswith(".build") or name in (".git", ".swiftpm", "Crashes", "__pycache__")
    wanted = set()
    for dirpath, dirnames, filenames in os.walk(ROOT):
        dirnames[:] = [d for d in dirnames if not skip(d)]
        rel = os.path.relpath(dirpath, ROOT)
        os.makedirs(os.path.join(TREE, rel), exist_ok=True)
        for name in filenames:
            src, dst = os.path.join(dirpath, name), os.path.join(TREE, rel, name)
            wanted.add(os.path.normpath(os.path.join(rel, name)))
            if os.path.islink(src):
                if os.path.lexists(dst):
                    os.remove(dst)
                os.symlink(os.readlink(src), dst)
                continue
            if os.path.isfile(dst) and not os.path.islink(dst) and os.path.getsize(src) == os.path.getsize(dst):
                with open(src, "rb") as a, open(dst, "rb") as b:
                    if a.read() == b.read():
                        continue
            if os.path.lexists(dst):
                os.remove(dst)
            shutil.copy2(src, dst)
    for dirpath, dirnames, filenames in os.walk(TREE, topdown=True):
        dirnames[:] = [d for d in dirnames if not skip(d)]
        for name in filenames:
            rel = os.path.normpath(os.path.relpath(os.path.join(dirpath, name), TREE))
            if rel not in wanted:
                os.remove(os.path.join(dirpath, name))
    # The incremental build does not always recompile the test modules when a type they use
    # changes its stored layout (a struct gained a field), and a stale test module reads garbage
    # (found when GEMMConfig gained `subBlock`). Touching the tests makes the unmutated build whole.
    now = time.time()
    for dirpath, _, filenames in os.walk(os.path.join(TREE, "Tests")):
        for name in filenames:
            if name.endswith(".swift"):
                os.utime(os.path.join(dirpath, name), (now, now))


def test_command(tests, skip=()):
    """The command that runs a mutant's tests: the C program, or `swift test --filter`."""
    if tests == C_TESTS:
        return ["bash", "Tests/C/run.sh", ".build/release"]
    return TEST + ["--filter", tests] + list(skip)


def main():
    args = sys.argv[1:]
    if "--list" in args:
        for m in MUTANTS:
            print(f"{m[0]:32} {m[1]}: {m[6]}")
        return
    chosen = [m for m in MUTANTS if not args or any(a in m[0] for a in args)]
    copy_tree()
    env_ci = dict(os.environ, CI="true")
    print(f"building the unmutated tree in {TREE} ...", flush=True)
    if run(BUILD, TREE, os.path.join(WORK, "build.log")) != 0:
        sys.exit(f"the unmutated tree does not build: {WORK}/build.log")
    for f in sorted({m[5] for m in chosen}):
        if subprocess.run(test_command(f), cwd=TREE, env=env_ci, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
            sys.exit(f"tests '{f}' fail without any mutant")
    report = []
    for (ident, path, text, replacement, occurrence, tests, what) in chosen:
        target = os.path.join(TREE, path)
        original = open(target).read()
        count = original.count(text)
        if count < occurrence:
            report.append({"id": ident, "status": "stale", "why": f"text found {count} times"})
            print(f"{ident:32} STALE (text found {count} times)", flush=True)
            continue
        at = -1
        for _ in range(occurrence):
            at = original.index(text, at + 1)
        open(target, "w").write(original[:at] + replacement + original[at + len(text):])
        started = time.time()
        try:
            log = os.path.join(WORK, f"{ident}.log")
            if run(BUILD, TREE, log) != 0:
                status, before = "invalid (does not compile)", None
            else:
                caught = subprocess.run(test_command(tests), cwd=TREE, env=env_ci, stdout=open(log, "a"),
                                        stderr=subprocess.STDOUT).returncode != 0
                skip = []
                for t in NEW_TESTS:
                    skip += ["--skip", t]
                before = None if tests == C_TESTS else subprocess.run(test_command(tests, skip), cwd=TREE, env=env_ci,
                                                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0
                status = "caught" if caught else "SURVIVED"
        finally:
            open(target, "w").write(original)
        report.append({"id": ident, "file": path, "what": what, "tests": tests, "status": status,
                       "caughtByOlderTests": before, "seconds": round(time.time() - started)})
        print(f"{ident:32} {status:28} older tests: {'caught' if before else 'missed' if before is not None else '-'}"
              f"  ({round(time.time() - started)} s)", flush=True)
    run(BUILD, TREE)
    caught = sum(r["status"] == "caught" for r in report)
    older = sum(bool(r.get("caughtByOlderTests")) for r in report)
    print(f"\nmutation score: {caught} of {len(report)} caught; the older tests alone catch {older}")
    json.dump(report, open(os.path.join(WORK, "report.json"), "w"), indent=1)
    if caught != len(report):
        sys.exit(1)


if __name__ == "__main__":
    main()
