import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIOpenCL

/// GEMMs on tensor cores (issue 32, item 5): `gemm_mma` under `--precision tf32` and `3xtf32`.
/// PoCL has no tensor cores, so these tests run the kernel with its `mma.sync` emulated in local
/// memory: every other line (tiles, register prefetch, fragment layouts, edges, epilogue) is the
/// one an NVIDIA GPU runs, and the emulated rounding is `cvt.rna`'s. The PTX instructions
/// themselves are checked on the device by the backend's own probe (the float64 check below).
final class TensorCoreTests: XCTestCase {
    /// The emulated kernel, and on a device whose OpenCL takes the PTX (an NVIDIA GPU in the GPU
    /// check) the instructions themselves.
    func backends(_ arithmetic: GEMMArithmetic) throws -> [OpenCLBackend] {
        let native = try OpenCLBackend(index: 0, arithmetic: arithmetic)
        return [try emulated(arithmetic)] + (native.tensorCores?.path == .ptx ? [native] : [])
    }

    func emulated(_ arithmetic: GEMMArithmetic) throws -> OpenCLBackend {
        _ = try TestBackends.requireOpenCL()
        let backend = try OpenCLBackend(index: 0, arithmetic: arithmetic, tensorCorePath: .emulated)
        XCTAssertEqual(backend.tensorCores, TensorCores(arithmetic: arithmetic, path: .emulated), backend.tensorCoreNote)
        XCTAssertTrue(backend.details.tensorCores)
        return backend
    }

    /// `act(alpha * A B + bias + R)` on the device, and in float64 with `sum |a b|` per element (the
    /// scale of the rounding error).
    func product(_ backend: OpenCLBackend, m: Int, n: Int, k: Int, batch: Int, ta: Bool, tb: Bool, biasMode: Int, seed: UInt64)
        throws -> (got: [Float], expected: [Double], scale: [Double]) {
        let a = Tensor.uniform([batch * m * k], in: -1...1, seed: seed).scalars
        let b = Tensor.uniform([batch * k * n], in: -1...1, seed: seed + 1).scalars
        let bias = Tensor.uniform([max(m, n)], in: -1...1, seed: seed + 2).scalars
        let r = Tensor.uniform([batch * m * n], in: -1...1, seed: seed + 3).scalars
        let alpha: Float = 0.75
        let (da, db) = (try backend.upload(Tensor(shape: [a.count], scalars: a)), try backend.upload(Tensor(shape: [b.count], scalars: b)))
        let (dbias, dr) = (try backend.upload(Tensor(shape: [bias.count], scalars: bias)), try backend.upload(Tensor(shape: [r.count], scalars: r)))
        let dc = try backend.allocate([batch * m * n])
        try backend.gemmLaunch(m: m, n: n, k: k, batch: batch,
                               a: try backend.mem(da, "t"), aRow: ta ? 1 : k, aCol: ta ? m : 1, aBatch: m * k,
                               b: try backend.mem(db, "t"), bRow: tb ? 1 : n, bCol: tb ? k : 1, bBatch: k * n,
                               c: try backend.mem(dc, "t"), ldc: n, cBatch: m * n, alpha: alpha,
                               bias: biasMode == 0 ? nil : try backend.mem(dbias, "t"), biasMode: biasMode,
                               residual: try backend.mem(dr, "t"), activation: .relu)
        let got = try backend.download(dc).scalars
        var expected = [Double](repeating: 0, count: got.count), scale = expected
        for p in 0..<batch {
            for i in 0..<m {
                for j in 0..<n {
                    var s = 0.0, magnitude = 0.0
                    for l in 0..<k {
                        let x = Double(a[p * m * k + (ta ? l * m + i : i * k + l)]) * Double(b[p * k * n + (tb ? j * k + l : l * n + j)])
                        s += x
                        magnitude += abs(x)
                    }
                    let at = p * m * n + i * n + j
                    var v = Double(alpha) * s + Double(r[at])
                    if biasMode == 1 { v += Double(bias[j]) } else if biasMode == 2 { v += Double(bias[i]) }
                    expected[at] = max(v, 0)
                    // The epilogue's own float32 rounding is relative to everything it adds.
                    scale[at] = Double(alpha) * magnitude + abs(v - Double(alpha) * s) + 1e-6
                }
            }
        }
        return (got, expected, scale)
    }

    /// The worst `|got - expected| / scale`, where `scale` is `alpha sum |a b| + |bias + R|`.
    func worst(_ p: (got: [Float], expected: [Double], scale: [Double])) -> Double {
        var w = 0.0
        for (g, (e, s)) in zip(p.got, zip(p.expected, p.scale)) {
            guard g.isFinite else { return .infinity }
            w = max(w, abs(Double(g) - e) / s)
        }
        return w
    }

    /// Shapes over more than one 128 x 128 block each way, K neither a multiple of the slice nor of
    /// 8, every transpose, both bias modes, a batch; and a tiny one.
    static let shapes: [(m: Int, n: Int, k: Int, batch: Int)] = [(130, 141, 37, 2), (5, 3, 1, 1), (17, 260, 70, 1)]

    func testTF32AndThreeTermProductsMatchFloat64WithinTheirPrecision() throws {
        for (tf32, three) in zip(try backends(.tf32), try backends(.tf32x3)) {
        var index: UInt64 = 0
        for s in Self.shapes {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                index += 1
                let what = "m\(s.m) n\(s.n) k\(s.k) b\(s.batch) ta\(ta) tb\(tb)"
                let bias = Int(index % 3)
                let one = worst(try product(tf32, m: s.m, n: s.n, k: s.k, batch: s.batch, ta: ta, tb: tb, biasMode: bias, seed: 100 + index))
                let three = worst(try product(three, m: s.m, n: s.n, k: s.k, batch: s.batch, ta: ta, tb: tb, biasMode: bias, seed: 100 + index))
                // TF32 keeps 11 significant bits: each product is within 2 * 2^-11 of exact; fp32 sums add K * 2^-24.
                XCTAssertLessThan(one, 1.1e-3, what)
                // Three terms leave about 2^-21 per product.
                XCTAssertLessThan(three, 2e-6, what)
                if s.k > 8 {
                    // TF32 is visibly lossy (a kernel that skipped the rounding would pass the bound above).
                    XCTAssertGreaterThan(one, 1e-5, what)
                }
            }
        }
        }
    }

    /// `A x 1` with K = 1 is `to_tf32(a)` itself: round to nearest on the 13 dropped bits, ties away
    /// from zero, subnormals and the largest floats included, infinities and NaN kept; checked bit
    /// for bit against a rounding written here independently in float64. Three terms give back
    /// `a` within 2^-21.
    func testTF32RoundingIsCvtRna() throws {
        for (tf32, three) in zip(try backends(.tf32), try backends(.tf32x3)) {
        // (No zeros: a sum starts at +0, so -0 would come back +0 whatever the rounding.)
        var values: [Float] = [1, -1, .infinity, -.infinity, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                               .leastNonzeroMagnitude, Float.leastNormalMagnitude * 1.37, 3.1415926, -2.7182817]
        for bits: UInt32 in [0x3f80_1000, 0x3f80_0fff, 0x3f80_1001, 0xbf80_1000, 0x3f80_3000, 0x3f80_2fff, 0x0000_1000, 0x0000_3000, 0x007f_f000] {
            values.append(Float(bitPattern: bits))
        }
        values += Tensor.uniform([64], in: -1000...1000, seed: 9).scalars
        func reference(_ x: Float) -> Float {
            guard x.isFinite, x != 0 else { return x }
            let exponent = max(Int(x.exponent), -126)      // TF32 keeps float32's exponents, subnormals included
            let ulp = Double(sign: .plus, exponent: exponent - 10, significand: 1)
            let q = (Double(x.magnitude) / ulp).rounded(.toNearestOrAwayFromZero) * ulp
            return Float(x < 0 ? -q : q)
        }
        for backend in [tf32, three] {
            let a = try backend.upload(Tensor(shape: [values.count], scalars: values))
            let one = try backend.upload(Tensor(shape: [1], scalars: [1]))
            let c = try backend.allocate([values.count])
            try backend.gemmLaunch(m: values.count, n: 1, k: 1, a: try backend.mem(a, "t"), aRow: 1, aCol: 1,
                                   b: try backend.mem(one, "t"), bRow: 1, bCol: 1, c: try backend.mem(c, "t"), ldc: 1)
            let got = try backend.download(c).scalars
            for (x, g) in zip(values, got) {
                if backend === tf32 {
                    // Tensor cores may flush subnormal operands to zero; the emulation keeps them.
                    if backend.tensorCores?.path == .ptx && x.isSubnormal && g == 0 { continue }
                    XCTAssertEqual(g.bitPattern, reference(x).bitPattern, "tf32(\(x)) bits \(String(x.bitPattern, radix: 16))")
                } else if x.isFinite && x.magnitude > 0x1p-100 && x.magnitude < Float.greatestFiniteMagnitude / 2 {
                    // (Near the subnormals the small half has no bits left to keep.)
                    XCTAssertLessThanOrEqual(abs(Double(g) - Double(x)), abs(Double(x)) * 0x1p-21, "3xtf32(\(x))")
                }
            }
            let nan = try backend.upload(Tensor(shape: [1], scalars: [.nan]))
            try backend.gemmLaunch(m: 1, n: 1, k: 1, a: try backend.mem(nan, "t"), aRow: 1, aCol: 1,
                                   b: try backend.mem(one, "t"), bRow: 1, bCol: 1, c: try backend.mem(c, "t"), ldc: 1)
            XCTAssertTrue(try backend.download(c).scalars[0].isNaN)
        }
        }
    }

    /// The default lowering under tensor cores counts products: ResNet-50's layers as a GPU sees
    /// them. Forward always implicit; the input gradient implicit at unit stride with 16 or more
    /// input channels per group, else im2col (the stem: 3 channels, stride 2; the strided 3x3 and
    /// 1x1 layers of each stage's first block).
    func testTheDefaultLoweringUnderTensorCoresCountsProducts() throws {
        func plan(_ x: [Int], _ w: [Int], _ p: Conv2DParams) throws -> ConvPlan { try ConvPlan(input: Shape(x), weight: Shape(w), bias: nil, params: p) }
        let stem = try plan([32, 3, 224, 224], [64, 3, 7, 7], Conv2DParams(stride: 2, padding: 3))
        let stage1 = try plan([32, 64, 56, 56], [64, 64, 3, 3], Conv2DParams(padding: 1))
        let stage2First = try plan([32, 128, 56, 56], [128, 128, 3, 3], Conv2DParams(stride: 2, padding: 1))
        let downsample = try plan([32, 256, 56, 56], [512, 256, 1, 1], Conv2DParams(stride: 2))
        let grouped15 = try plan([2, 30, 8, 8], [30, 15, 3, 3], Conv2DParams(padding: 1, groups: 2))
        for p in [stem, stage1, stage2First, downsample, grouped15] {
            XCTAssertEqual(ConvolutionLowering.tensorCoreDefault(for: p, backward: false), .implicit, "\(p.input) \(p.weight)")
        }
        XCTAssertEqual(ConvolutionLowering.tensorCoreDefault(for: stage1, backward: true), .implicit)
        for p in [stem, stage2First, downsample, grouped15] {
            XCTAssertEqual(ConvolutionLowering.tensorCoreDefault(for: p, backward: true), .im2col, "\(p.input) \(p.weight)")
        }
        let rectangular = try plan([1, 64, 8, 8], [64, 64, 3, 3], Conv2DParams(strides: (1, 2), pads: (top: 1, left: 1, bottom: 1, right: 1)))
        XCTAssertEqual(ConvolutionLowering.tensorCoreDefault(for: rectangular, backward: true), .im2col, "a stride along x alone")
    }

    /// Convolutions under tensor cores: implicit GEMMs on them (`conv_mma_forward`,
    /// `conv_mma_backward`: one launch each, no column buffer), im2col GEMMs on them
    /// (`XAI_CONV_LOWERING=im2col`), pointwise layers plain GEMMs; by default implicit except the
    /// input gradients of strided layers and of layers with under 16 input channels per group. Each output element is the same
    /// chain of instructions either way, so the lowerings agree bit for bit, forward (bias, skip,
    /// rectifier) and backward to the input; both are within TF32's (or 3xTF32's) error of float64.
    /// Layers: ImplicitConvolutionTests' cases (pads on some sides, strides, dilation, groups,
    /// rectangular kernels, one output pixel) and one over two blocks of rows and three of columns
    /// with K (180 forward, 136 backward) not a multiple of the slice.
    func testConvolutionsRunOnTheTensorCoresAsImplicitGEMMs() throws {
        let reference = ReferenceBackend()
        let cases = ImplicitConvolutionTests.cases + [
            ImplicitConvolutionTests.Case(x: [2, 20, 13, 11], w: [136, 20, 3, 3], params: Conv2DParams(padding: 1)),
            // Enough input channels, but strided (im2col backward by default), and 16 per group (implicit).
            ImplicitConvolutionTests.Case(x: [1, 16, 9, 9], w: [8, 16, 3, 3], params: Conv2DParams(stride: 2, padding: 1)),
            ImplicitConvolutionTests.Case(x: [1, 32, 6, 7], w: [4, 16, 3, 3], params: Conv2DParams(padding: 1, groups: 2)),
        ]
        for (arithmetic, bound) in [(GEMMArithmetic.tf32, Float(5e-3)), (.tf32x3, Float(1e-5))] {
            for byDefault in try backends(arithmetic) {
                let path = try XCTUnwrap(byDefault.tensorCores?.path)
                let implicit = try OpenCLBackend(index: 0, convolution: .implicit, arithmetic: arithmetic, tensorCorePath: path)
                let im2col = try OpenCLBackend(index: 0, profileKernels: true, convolution: .im2col, arithmetic: arithmetic, tensorCorePath: path)
                let profiled = try OpenCLBackend(index: 0, profileKernels: true, convolution: .implicit, arithmetic: arithmetic, tensorCorePath: path)
                XCTAssertTrue(byDefault.details.algorithms.contains("implicit GEMM on the tensor cores, im2col GEMM for input gradients of strided layers"),
                              byDefault.details.algorithms)
                XCTAssertTrue(implicit.details.algorithms.contains("implicit GEMM on the tensor cores (requested)"), implicit.details.algorithms)
                XCTAssertTrue(im2col.details.algorithms.contains("im2col GEMM on the tensor cores"), im2col.details.algorithms)
                for (index, c) in cases.enumerated() {
                    let what = "\(arithmetic.rawValue) \(path) case \(index) x\(c.x) w\(c.w)"
                    let plan = try ConvPlan(input: Shape(c.x), weight: Shape(c.w), bias: nil, params: c.params)
                    let pointwise = plan.isPointwise
                    let gathers = c.params.strideH == 1 && c.params.strideW == 1 && c.x[1] / c.params.groups >= 16
                    XCTAssertEqual(byDefault.lowering(for: plan, backward: false), pointwise ? .im2col : .implicit, what)
                    XCTAssertEqual(byDefault.lowering(for: plan, backward: true), pointwise || !gathers ? .im2col : .implicit, what)
                    XCTAssertEqual(implicit.lowering(for: plan, backward: true), pointwise ? .im2col : .implicit, what)
                    XCTAssertEqual(im2col.lowering(for: plan, backward: true), .im2col, what)
                    let seed = UInt64(10 * index + 600)
                    let ((f0, b0), (f1, b1)) = (try ImplicitConvolutionTests.run(c, on: im2col, seed: seed), try ImplicitConvolutionTests.run(c, on: implicit, seed: seed))
                    let (f64, b64) = try ImplicitConvolutionTests.run(c, on: reference, seed: seed)
                    XCTAssertEqual(f1.scalars.map(\.bitPattern), f0.scalars.map(\.bitPattern), "\(what): forward bits")
                    XCTAssertEqual(b1.scalars.map(\.bitPattern), b0.scalars.map(\.bitPattern), "\(what): backward bits")
                    for (got, want, direction) in [(f1, f64, "forward"), (b1, b64, "backward")] {
                        let scale = want.scalars.map { abs($0) }.max() ?? 1
                        let error = zip(got.scalars, want.scalars).map { abs($0 - $1) }.max() ?? 0
                        XCTAssertLessThan(error, bound * scale, "\(what) \(direction)")
                        if arithmetic == .tf32 && c.x[1] / c.params.groups * c.w[2] * c.w[3] > 8 {
                            XCTAssertGreaterThan(error, 1e-7 * scale, "\(what) \(direction): no TF32 rounding seen")
                        }
                    }
                    // One launch each way on the implicit path, and no column kernels.
                    guard !pointwise else { continue }
                    _ = try profiled.takeKernelProfile()
                    _ = try ImplicitConvolutionTests.run(c, on: profiled, seed: seed)
                    let names = Set(try profiled.takeKernelProfile().map(\.name))
                    XCTAssertTrue(names.isSuperset(of: ["conv_mma_forward", "conv_mma_backward"]), "\(what): \(names.sorted())")
                    XCTAssertTrue(names.isDisjoint(with: ["conv2d_im2col", "conv2d_col2im", "gemm_mma"]), "\(what): \(names.sorted())")
                }
            }
        }
    }

    /// `xai-bench tune`'s lowering stage (``ConvolutionLoweringTuner``) times each layer forward and
    /// backward under both lowerings in fp32 (Winograd's tiles where the layer takes them) and under
    /// each tensor-core arithmetic, and keeps the faster of each in the device's table, written where
    /// `XAI_CACHE_DIR` says; emulated instructions are filed apart from the real ones, and a later
    /// run keeps what it did not time. A backend under tensor cores then follows its own
    /// arithmetic's and path's entries (the kernels it launches show it), fp32 backends the fp32
    /// ones, and a layer without an entry, or a table from before, takes the product-count
    /// default; `XAI_CONV_LOWERING` still wins.
    func testTheTunerTimesTheLoweringsUnderEachArithmeticAndTheTableSteersTheTensorCores() throws {
        _ = try TestBackends.requireOpenCL()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("xai-lowering-tune-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        // The GPU check runs the tests under its own XAI_CACHE_DIR: put it back after.
        let previous = ProcessInfo.processInfo.environment["XAI_CACHE_DIR"]
        setenv("XAI_CACHE_DIR", folder.path, 1)
        defer { if let previous { setenv("XAI_CACHE_DIR", previous, 1) } else { unsetenv("XAI_CACHE_DIR") } }
        func plan(_ x: [Int], _ w: [Int], _ p: Conv2DParams) throws -> ConvPlan { try ConvPlan(input: Shape(x), weight: Shape(w), bias: nil, params: p) }
        // Unit stride and 16 channels (implicit both ways by default under tensor cores); strided on 4 (im2col backward).
        let wide = try plan([1, 16, 6, 6], [8, 16, 3, 3], Conv2DParams(padding: 1))
        let strided = try plan([1, 4, 7, 7], [8, 4, 3, 3], Conv2DParams(stride: 2, padding: 1))
        let layers = [ConvolutionLoweringTuner.Layer(name: "wide", plan: wide, count: 2), .init(name: "strided", plan: strided, count: 1)]

        let result = try ConvolutionLoweringTuner.tune(index: 0, layers: layers, repeats: 1, tensorCorePath: .emulated)
        XCTAssertEqual(result.skipped, [])
        XCTAssertEqual(result.measurements.map { "\($0.arithmetic) \($0.name)" },
                       ["fp32 wide", "fp32 strided", "tf32 emulated wide", "tf32 emulated strided", "3xtf32 emulated wide", "3xtf32 emulated strided"])
        for m in result.measurements {
            XCTAssertEqual(m.forward.count, 2, m.name)
            XCTAssertEqual(m.backward.count, 2, m.name)
            XCTAssertTrue((m.forward + m.backward).allSatisfy { $0 > 0 && $0.isFinite }, "\(m)")
            let takesWinograd = m.arithmetic == "fp32" && m.name == "wide"
            XCTAssertEqual(m.winograd.map { $0 != nil }, [takesWinograd, takesWinograd], "\(m)")
            XCTAssertEqual(m.count, m.name == "wide" ? 2 : 1)
            // The faster of each pair is kept, per arithmetic.
            let choice = try XCTUnwrap(result.table.choices[m.layer])
            let faster = { (t: [Double]) -> ConvolutionLowering in t[1] < t[0] ? .implicit : .im2col }
            if m.arithmetic == "fp32" {
                XCTAssertEqual([choice.forward, choice.backward], [faster(m.forward), faster(m.backward)], "\(m)")
                let tiles = m.winograd.compactMap { $0 }
                XCTAssertEqual(choice.winograd, tiles.isEmpty ? nil : tiles.min()! < m.forward.min()!, "\(m)")
            } else {
                let entry = try XCTUnwrap(choice.tensorCores?[m.arithmetic], "\(m)")
                XCTAssertEqual([entry.forward, entry.backward], [faster(m.forward), faster(m.backward)], "\(m)")
            }
        }
        let fp32 = try OpenCLBackend(index: 0)
        let key = ConvolutionLoweringTable.key(for: fp32.info, gemm: fp32.gemmConfig)
        XCTAssertEqual(result.table.key, key)
        XCTAssertEqual(ConvolutionLoweringTable.tables(in: ConvolutionLoweringTable.file()), [result.table], "stored where XAI_CACHE_DIR says")
        // Arguments the tuner refuses, naming them.
        for (bad, parameter) in [({ _ = try ConvolutionLoweringTuner.tune(index: 0, layers: layers, repeats: 0, tensorCores: []) }, "repeat"),
                                 ({ _ = try ConvolutionLoweringTuner.tune(index: 0, layers: [], tensorCores: []) }, "layers"),
                                 ({ _ = try ConvolutionLoweringTuner.tune(index: 0, layers: layers, tensorCores: [.fp32]) }, "tensorCores")]
            as [(() throws -> Void, String)] {
            XCTAssertThrowsError(try bad()) { XCTAssertTrue("\($0)".contains(parameter), "\($0)") }
        }
        // Without tensor cores the arithmetic is skipped, with the reason; the fp32 measurement of the
        // one layer timed again is stored, and everything it did not time is kept.
        let mma = ProcessInfo.processInfo.environment["XAI_MMA"]
        setenv("XAI_MMA", "off", 1)
        let without = Result { try ConvolutionLoweringTuner.tune(index: 0, layers: [layers[1]], repeats: 1, tensorCores: [.tf32]) }
        if let mma { setenv("XAI_MMA", mma, 1) } else { unsetenv("XAI_MMA") }
        let skippedOne = try without.get()
        XCTAssertEqual(skippedOne.skipped, ["tf32: tf32 asked for; XAI_MMA=off: GEMMs run fp32"])
        XCTAssertEqual(skippedOne.measurements.map(\.arithmetic), ["fp32"])
        let kept = try XCTUnwrap(ConvolutionLoweringTable.tables(in: ConvolutionLoweringTable.file()).first)
        XCTAssertEqual(kept.choices[wide.layer], result.table.choices[wide.layer], "a layer not timed again keeps its measurements")
        XCTAssertEqual(kept.choices[strided.layer]?.tensorCores, result.table.choices[strided.layer]?.tensorCores,
                       "arithmetics not timed again keep theirs")
        XCTAssertEqual(kept.choices[strided.layer]?.forward, skippedOne.measurements[0].faster(backward: false))

        // A table that contradicts every default: each backend follows its own arithmetic's and
        // path's entries (these are emulated: the real instructions' `tf32` says otherwise).
        let table = ConvolutionLoweringTable(key: key, measured: "test", choices: [
            wide.layer: .init(forward: .implicit, backward: .implicit,
                              tensorCores: ["tf32 emulated": .init(forward: .im2col, backward: .im2col),
                                            "3xtf32 emulated": .init(forward: .implicit, backward: .im2col),
                                            "tf32": .init(forward: .implicit, backward: .implicit)]),
            strided.layer: .init(forward: .implicit, backward: .implicit, tensorCores: ["tf32 emulated": .init(forward: .im2col, backward: .implicit)]),
        ])
        try table.store()
        for p in [wide, strided] {
            XCTAssertEqual(ConvolutionLowering.defaultChoice(for: p, backward: false), .im2col, "the fp32 default differs from the table")
        }
        let tunedFP32 = try OpenCLBackend(index: 0)
        for p in [wide, strided] {
            XCTAssertEqual(tunedFP32.lowering(for: p, backward: false), .implicit, p.layer)
            XCTAssertEqual(tunedFP32.lowering(for: p, backward: true), .implicit, p.layer)
        }
        let want: [(GEMMArithmetic, ConvPlan, ConvolutionLowering, ConvolutionLowering)] = [
            (.tf32, wide, .im2col, .im2col), (.tf32x3, wide, .implicit, .im2col),
            (.tf32, strided, .im2col, .implicit), (.tf32x3, strided, .implicit, .im2col),   // no 3xtf32 entry: the default
        ]
        for (arithmetic, p, forward, backward) in want {
            let what = "\(arithmetic.rawValue) \(p.layer)"
            let tuned = try OpenCLBackend(index: 0, profileKernels: true, arithmetic: arithmetic, tensorCorePath: .emulated)
            XCTAssertEqual(tuned.lowering(for: p, backward: false), forward, what)
            XCTAssertEqual(tuned.lowering(for: p, backward: true), backward, what)
            XCTAssertTrue(tuned.details.algorithms.contains("per layer (\(arithmetic == .tf32 ? "2 layers" : "1 layer") tuned for \(arithmetic.rawValue) emulated test"),
                          tuned.details.algorithms)
            let c = ImplicitConvolutionTests.Case(x: p.input.dims, w: p.weight.dims, params: p.params)
            _ = try tuned.takeKernelProfile()
            _ = try ImplicitConvolutionTests.run(c, on: tuned, seed: 40)
            let names = Set(try tuned.takeKernelProfile().map(\.name))
            XCTAssertEqual(names.contains("conv_mma_forward"), forward == .implicit, "\(what): \(names.sorted())")
            XCTAssertEqual(names.contains("conv2d_im2col"), forward == .im2col, "\(what): \(names.sorted())")
            XCTAssertEqual(names.contains("conv_mma_backward"), backward == .implicit, "\(what): \(names.sorted())")
            XCTAssertEqual(names.contains("conv2d_col2im"), backward == .im2col, "\(what): \(names.sorted())")
            let fixed = try OpenCLBackend(index: 0, convolution: .implicit, arithmetic: arithmetic, tensorCorePath: .emulated)
            XCTAssertEqual(fixed.lowering(for: p, backward: false), .implicit, "\(what): a fixed lowering wins over the table")
        }
        // A table from before the tensor cores were timed leaves them on the default.
        let old = try JSONDecoder().decode(ConvolutionLoweringTable.self, from: Data("""
            {"key": "k", "measured": "then", "choices": {"\(wide.layer)": {"forward": "im2col", "backward": "im2col"}}}
            """.utf8))
        XCTAssertNil(old.choices[wide.layer]?.tensorCores)
        XCTAssertEqual(ConvolutionLoweringPolicy.perLayer(old).tensorCoreLowering(for: wide, backward: false, tensorCores: TensorCores(arithmetic: .tf32, path: .ptx)), .implicit)
        XCTAssertEqual(ConvolutionLoweringPolicy.perLayer(old).tensorCoreLowering(for: wide, backward: true, tensorCores: TensorCores(arithmetic: .tf32, path: .ptx)), .implicit)
        XCTAssertTrue(try OpenCLBackend(index: 0, arithmetic: .tf32, tensorCorePath: .emulated).details.algorithms.contains("tuned for tf32 emulated"))
        // fp32 measurements alone (im2col, where the default under tensor cores is implicit) say nothing to the tensor cores.
        try ConvolutionLoweringTable(key: key, measured: "fp32 only", choices: [wide.layer: .init(forward: .im2col, backward: .im2col)]).store()
        let untimed = try OpenCLBackend(index: 0, arithmetic: .tf32, tensorCorePath: .emulated)
        XCTAssertTrue(untimed.details.algorithms.contains("(default under tensor cores; `xai-bench tune` measures"), untimed.details.algorithms)
        XCTAssertEqual(untimed.lowering(for: wide, backward: false), .implicit)
        XCTAssertEqual(untimed.lowering(for: wide, backward: true), .implicit)
    }

    /// A device without tensor cores (PoCL here) runs `tf32` on the fp32 kernels, bit for bit, and
    /// says why in its details and the provenance; `XAI_MMA` picks emulation or turns them off; a
    /// candidate that fails the float64 check is refused with the error it showed.
    func testWithoutTensorCoresGEMMsRunFP32AndSaySo() throws {
        _ = try TestBackends.requireOpenCL()
        let plain = try OpenCLBackend(index: 0)
        let asked = try OpenCLBackend(index: 0, arithmetic: .tf32)
        guard !plain.info.vendor.uppercased().contains("NVIDIA") else { throw XCTSkip("an NVIDIA device may have tensor cores") }
        XCTAssertNil(asked.tensorCores)
        XCTAssertTrue(asked.tensorCoreNote.contains("not an NVIDIA GPU"), asked.tensorCoreNote)
        XCTAssertFalse(asked.details.tensorCores)
        XCTAssertEqual(asked.details.facts.first { $0.0 == "tensor cores" }?.1, asked.tensorCoreNote)
        XCTAssertTrue(asked.details.algorithms.contains("fp32 kernels (tf32 asked for"), asked.details.algorithms)
        XCTAssertFalse(plain.details.facts.contains { $0.0 == "tensor cores" })
        XCTAssertEqual(Provenance(backend: asked, precision: .tf32).precision, "exact")
        XCTAssertEqual(Provenance(backend: try emulated(.tf32x3), precision: .tf32x3).precision, "3xtf32")
        XCTAssertTrue(TensorCores.summary(for: plain.info).hasPrefix("none ("))

        let a = Tensor.uniform([33, 21], seed: 5), b = Tensor.uniform([21, 19], seed: 6)
        func product(_ backend: OpenCLBackend) throws -> [Float] {
            try backend.download(try backend.gemm(try backend.upload(a), try backend.upload(b), plan: try GemmPlan(a: [33, 21], b: [21, 19], transposeA: false, transposeB: false, bias: nil),
                                                  alpha: 1, bias: nil, activation: .identity)).scalars
        }
        XCTAssertEqual(try product(asked).map(\.bitPattern), try product(plain).map(\.bitPattern))

        XCTAssertEqual(try TensorCores.path(for: plain.info, environment: ["XAI_MMA": "emulate"]).get(), .emulated)
        XCTAssertThrowsError(try TensorCores.path(for: plain.info, environment: ["XAI_MMA": "off"]).get())

        // The tf32 kernel against the three-term tolerance: refused, with its error.
        let tf32 = try emulated(.tf32)
        let why = tf32.probe(TensorCores(arithmetic: .tf32x3, path: .emulated))
        XCTAssertTrue(why?.contains("off by") == true, why ?? "accepted")
        XCTAssertNil(tf32.probe(TensorCores(arithmetic: .tf32, path: .emulated)))
    }

    func testPrecisionNames() throws {
        XCTAssertEqual(try Precision(parsing: "fp32"), .exact)
        XCTAssertEqual(try Precision(parsing: "TF32"), .tf32)
        XCTAssertEqual(try Precision(parsing: "3xtf32"), .tf32x3)
        XCTAssertThrowsError(try Precision(parsing: "bf16"))
        XCTAssertEqual(GEMMArithmetic(.fast), .fp32)
        XCTAssertEqual(GEMMArithmetic(.tf32x3), .tf32x3)
    }
}
