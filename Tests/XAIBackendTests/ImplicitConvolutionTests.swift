import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIOpenCL

/// Convolutions as implicit GEMMs on OpenCL (issue 32, item 4): the GEMM reads the input where it
/// needs it, with no column buffer. Each output is the same chain of fmas as on the im2col path, so
/// the two lowerings must agree bit for bit (forward with bias, skip and rectifier, and backward to
/// the input), on both GEMM engines and every tile variant, and both must match float64.
final class ImplicitConvolutionTests: XCTestCase {
    /// Shapes that reach every branch of the kernels: padding on some sides only, strides, dilation,
    /// groups, rectangular kernels, planes that are not multiples of 16 or of a tile, a single
    /// output pixel, channel counts that are not multiples of the register block, rows wider than 16.
    struct Case {
        var x: [Int], w: [Int], params: Conv2DParams
    }

    static let cases: [Case] = [
        Case(x: [2, 5, 11, 13], w: [7, 5, 3, 3], params: Conv2DParams(padding: 1)),
        Case(x: [3, 4, 9, 20], w: [10, 4, 3, 3], params: Conv2DParams(stride: 2, padding: 1)),
        Case(x: [2, 6, 12, 12], w: [10, 3, 3, 3], params: Conv2DParams(padding: 2, dilation: 2, groups: 2)),
        // Unit stride on rows wider than 16: the rows kernel's whole-run loads.
        Case(x: [2, 3, 6, 40], w: [4, 3, 3, 3], params: Conv2DParams(padding: 1)),
        Case(x: [2, 3, 10, 17], w: [5, 3, 2, 5], params: Conv2DParams(strides: (1, 2), pads: (top: 0, left: 2, bottom: 1, right: 1))),
        Case(x: [2, 8, 8, 8], w: [16, 8, 1, 1], params: Conv2DParams(stride: 2)),
        Case(x: [2, 9, 3, 3], w: [4, 9, 3, 3], params: Conv2DParams()),
        Case(x: [1, 4, 34, 36], w: [3, 4, 7, 7], params: Conv2DParams(stride: 2, padding: 3)),
    ]

    /// A case's forward (bias, skip and rectifier) and input gradient on `backend`, from inputs drawn
    /// with `seed` (the same for every backend, so results compare).
    static func run(_ c: Case, on backend: any Backend, seed: UInt64) throws -> (forward: Tensor, backward: Tensor) {
        let output = try ConvPlan(input: Shape(c.x), weight: Shape(c.w), bias: nil, params: c.params).output
        let x = Tensor.uniform(Shape(c.x), seed: seed), w = Tensor.uniform(Shape(c.w), seed: seed + 1)
        let bias = Tensor.uniform([c.w[0]], seed: seed + 2)
        let skip = Tensor.uniform(output, seed: seed + 3), gy = Tensor.uniform(output, seed: seed + 4)
        let b = backend
        let y = try b.conv2d(try b.upload(x), weight: try b.upload(w), bias: try b.upload(bias), residual: try b.upload(skip),
                             params: c.params, activation: .relu)
        let dx = try b.conv2dBackwardInput(try b.upload(gy), weight: try b.upload(w), params: c.params, inputShape: Shape(c.x))
        return (try b.download(y), try b.download(dx))
    }

    static let engines: [GEMMConfig] = [
        .rows, .baseline,
        try! GEMMConfig(parsing: "tiled/ts32/wpt4/tk8/vw4/db/sb4"),
        try! GEMMConfig(parsing: "tiled/ts16/wpt2/tk4/vw2"),
        try! GEMMConfig(parsing: "tiled/ts32/wpt4/tk16/vw2/db/pf"),
        // 16 work-items, a B row of 32 runs: each run at its own column (no CONV_FIXED_COLUMNS).
        try! GEMMConfig(parsing: "tiled/ts32/wpt8/tk8/vw1/pf"),
        try! GEMMConfig(parsing: "tiled/ts32/wpt8/tk8/vw1/db"),
    ]

    func testImplicitGEMMHasTheBitsOfIm2colAndMatchesFloat64() throws {
        _ = try TestBackends.requireOpenCL()
        let reference = ReferenceBackend()
        for gemm in Self.engines {
            let im2col = try OpenCLBackend(index: 0, gemm: gemm, convolution: .im2col)
            let implicit = try OpenCLBackend(index: 0, gemm: gemm, convolution: .implicit)
            for (index, c) in Self.cases.enumerated() {
                let what = "\(gemm) case \(index) x\(c.x) w\(c.w)"
                let plan = try ConvPlan(input: Shape(c.x), weight: Shape(c.w), bias: nil, params: c.params)
                // A fixed lowering holds for every layer, strided input gradients included.
                XCTAssertEqual(implicit.lowering(for: plan, backward: true), .implicit, what)
                XCTAssertEqual(im2col.lowering(for: plan, backward: false), .im2col, what)
                let seed = UInt64(10 * index + 10)
                let ((f0, b0), (f1, b1), (fr, br)) = (try Self.run(c, on: im2col, seed: seed), try Self.run(c, on: implicit, seed: seed),
                                                      try Self.run(c, on: reference, seed: seed))
                XCTAssertEqual(f1.scalars.map(\.bitPattern), f0.scalars.map(\.bitPattern), "\(what): forward bits")
                XCTAssertEqual(b1.scalars.map(\.bitPattern), b0.scalars.map(\.bitPattern), "\(what): backward bits")
                if let m = mismatch(doubles(f1), doubles(fr)) { XCTFail("\(what) forward against float64: \(m)") }
                if let m = mismatch(doubles(b1), doubles(br)) { XCTFail("\(what) backward against float64: \(m)") }
            }
        }
    }

    /// One launch a convolution, forward and backward, whatever the batch and the groups, and no
    /// im2col or col2im kernel in the profile.
    func testOneLaunchAndNoColumnKernels() throws {
        _ = try TestBackends.requireOpenCL()
        for gemm in [GEMMConfig.rows, .baseline] {
            let cl = try OpenCLBackend(index: 0, gemm: gemm, profileKernels: true, convolution: .implicit)
            for (batch, groups) in [(1, 1), (5, 1), (3, 2)] {
                let x = try cl.upload(Tensor.uniform([batch, 4, 10, 10], seed: 1))
                let w = try cl.upload(Tensor.uniform([6, 4 / groups, 3, 3], seed: 2))
                let params = Conv2DParams(padding: 1, groups: groups)
                _ = try cl.takeKernelProfile()
                let before = cl.transfers
                let y = try cl.conv2d(x, weight: w, bias: nil, params: params, activation: .relu)
                _ = try cl.conv2dBackwardInput(y, weight: w, params: params, inputShape: x.shape)
                XCTAssertEqual(cl.transfers.since(before).kernelLaunches, 2, "\(gemm) batch \(batch) groups \(groups)")
                let names = try cl.takeKernelProfile().map(\.name).sorted()
                XCTAssertEqual(names, gemm.engine == .rows ? ["conv_rows_backward", "conv_rows_forward"] : ["conv_tiled_backward", "conv_tiled_forward"])
            }
        }
    }

    /// Non-finite values travel as on the im2col path: a NaN or infinity in the input, the output
    /// gradient or a weight reaches exactly the outputs it reaches there (an infinite weight times
    /// the zero of a tap that reaches no pixel must not be added). NaNs compare by position (their
    /// payloads are the hardware's), everything else bit for bit; both engines, and the tensor
    /// cores (emulated) under both arithmetics.
    func testNonFiniteValuesPropagateAsOnIm2col() throws {
        _ = try TestBackends.requireOpenCL()
        func with(_ t: Tensor, _ changes: [Int: Float]) throws -> Tensor {
            var v = t.scalars
            for (i, x) in changes { v[i] = x }
            return try Tensor(shape: t.shape, scalars: v)
        }
        let x = Tensor.uniform([1, 3, 6, 7], seed: 3), w = Tensor.uniform([4, 3, 3, 3], seed: 4)
        func comparable(_ t: Tensor) -> [UInt32] { t.scalars.map { $0.isNaN ? Float.nan.bitPattern : $0.bitPattern } }
        let arithmetics: [(GEMMConfig, GEMMArithmetic)] = [(.rows, .fp32), (.baseline, .fp32), (.rows, .tf32), (.rows, .tf32x3)]
        // Strided, and at unit stride (the tensor-core kernel's masks take another path there):
        // pads that leave taps one past the last output row and column.
        for (params, outputShape) in [(Conv2DParams(strides: (2, 2), pads: (top: 1, left: 1, bottom: 0, right: 1)), Shape([1, 4, 3, 4])),
                                      (Conv2DParams(strides: (1, 1), pads: (top: 1, left: 1, bottom: 0, right: 1)), Shape([1, 4, 5, 7]))] {
            let gy = Tensor.uniform(outputShape, seed: 5)
            let cases = [
                (try with(x, [5: .nan, 40: .infinity]), w, try with(gy, [7: -.infinity])),
                (x, try with(w, [13: .infinity, 30: -.infinity]), gy),
            ]
            for (gemm, arithmetic) in arithmetics {
                for (index, (x, w, gy)) in cases.enumerated() {
                    let what = "\(gemm) \(arithmetic) stride \(params.strideH) case \(index)"
                    var results: [[UInt32]] = []
                    for lowering in ConvolutionLowering.allCases {
                        let cl = try OpenCLBackend(index: 0, gemm: gemm, convolution: lowering, arithmetic: arithmetic,
                                                   tensorCorePath: arithmetic == .fp32 ? nil : .emulated)
                        XCTAssertEqual(cl.tensorCores != nil, arithmetic != .fp32)
                        XCTAssertEqual(cl.lowering(for: try ConvPlan(input: x.shape, weight: w.shape, bias: nil, params: params), backward: true), lowering)
                        let y = try cl.download(try cl.conv2d(try cl.upload(x), weight: try cl.upload(w), bias: nil, params: params, activation: .identity))
                        XCTAssertEqual(y.shape, outputShape)
                        let dx = try cl.download(try cl.conv2dBackwardInput(try cl.upload(gy), weight: try cl.upload(w), params: params, inputShape: x.shape))
                        XCTAssertTrue(y.scalars.contains { !$0.isFinite } && dx.scalars.contains { !$0.isFinite }, what)
                        XCTAssertTrue(dx.scalars.contains { $0.isFinite }, "\(what): some input pixels meet no infinite value")
                        results.append(comparable(y) + comparable(dx))
                    }
                    XCTAssertEqual(results[0], results[1], what)
                }
            }
        }
    }

    /// The lowering per layer: `XAI_CONV_LOWERING` for all, else the tuner's table for this device
    /// and GEMM configuration where it names the layer, else the default rule (implicit at unit
    /// stride on wide rows); CLBlast's engine, depthwise and pointwise layers never take the
    /// implicit kernels.
    func testLoweringComesFromTheEnvironmentTheTableOrTheDefault() throws {
        let strided = try ConvPlan(input: [2, 8, 64, 64], weight: [8, 8, 3, 3], bias: nil, params: Conv2DParams(stride: 2, padding: 1))
        let plain = try ConvPlan(input: [2, 8, 64, 64], weight: [8, 8, 3, 3], bias: nil, params: Conv2DParams(padding: 1))
        let narrow = try ConvPlan(input: [2, 8, 32, 32], weight: [8, 8, 3, 3], bias: nil, params: Conv2DParams(padding: 1))
        let small = try ConvPlan(input: [2, 8, 16, 16], weight: [8, 8, 3, 3], bias: nil, params: Conv2DParams(padding: 1))
        let env = ["XAI_CONV_LOWERING": "IM2COL"]
        XCTAssertEqual(try ConvolutionLoweringPolicy.choose(requested: nil, tableKey: "k", environment: env).0.lowering(for: plain, backward: false), .im2col)
        XCTAssertThrowsError(try ConvolutionLoweringPolicy.choose(requested: nil, tableKey: "k", environment: ["XAI_CONV_LOWERING": "winograd"])) { error in
            XCTAssertTrue("\(error)".contains("XAI_CONV_LOWERING"), "\(error)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("xai-lowering-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let cache = ["XAI_CACHE_DIR": dir.path]
        // A cache file that is not a list of tables (hostile or truncated) reads as none.
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for junk in ["", "{", "[{\"key\": 3}]", "{\"key\": \"k\", \"measured\": \"x\", \"choices\": {}}"] {
            try Data(junk.utf8).write(to: ConvolutionLoweringTable.file(environment: cache))
            let (policy, source) = try ConvolutionLoweringPolicy.choose(requested: nil, tableKey: "k", environment: cache)
            XCTAssertTrue(source.hasPrefix("per layer by default"), "\(junk): \(source)")
            XCTAssertEqual(policy.lowering(for: small, backward: false), .im2col)
        }
        let byDefault = try ConvolutionLoweringPolicy.choose(requested: nil, tableKey: "k", environment: cache).0
        XCTAssertEqual(byDefault.lowering(for: plain, backward: false), .implicit)
        XCTAssertEqual(byDefault.lowering(for: plain, backward: true), .implicit)
        XCTAssertEqual(byDefault.lowering(for: narrow, backward: false), .implicit)
        XCTAssertEqual(byDefault.lowering(for: narrow, backward: true), .im2col)
        XCTAssertEqual(byDefault.lowering(for: small, backward: false), .im2col)
        XCTAssertEqual(byDefault.lowering(for: strided, backward: false), .im2col)
        XCTAssertEqual(byDefault.lowering(for: strided, backward: true), .im2col)
        let stridedAcross = try ConvPlan(input: [2, 8, 64, 128], weight: [8, 8, 3, 3], bias: nil,
                                         params: Conv2DParams(strides: (1, 2), pads: (top: 1, left: 1, bottom: 1, right: 1)))
        XCTAssertEqual(byDefault.lowering(for: stridedAcross, backward: false), .im2col)
        XCTAssertEqual(byDefault.lowering(for: stridedAcross, backward: true), .im2col)
        try ConvolutionLoweringTable(key: "k", measured: "now", choices: [plain.layer: .init(forward: .im2col, backward: .implicit)]).store(environment: cache)
        try ConvolutionLoweringTable(key: "other", measured: "now", choices: [strided.layer: .init(forward: .im2col, backward: .implicit)]).store(environment: cache)
        let tuned = try ConvolutionLoweringPolicy.choose(requested: nil, tableKey: "k", environment: cache).0
        XCTAssertEqual(tuned.lowering(for: plain, backward: false), .im2col)
        XCTAssertEqual(tuned.lowering(for: plain, backward: true), .implicit)
        XCTAssertEqual(tuned.lowering(for: strided, backward: true), .im2col, "another key's table does not apply")
        // The batch is not part of a layer's name.
        let batch7 = try ConvPlan(input: [7, 8, 64, 64], weight: [8, 8, 3, 3], bias: nil, params: Conv2DParams(padding: 1))
        XCTAssertEqual(tuned.lowering(for: batch7, backward: false), .im2col)
        var off = cache
        off["XAI_GEMM_TUNING"] = "off"
        XCTAssertEqual(try ConvolutionLoweringPolicy.choose(requested: nil, tableKey: "k", environment: off).0.lowering(for: plain, backward: false), .implicit)

        _ = try TestBackends.requireOpenCL()
        XCTAssertEqual(try OpenCLBackend(index: 0, gemm: .clblast, convolution: .implicit).lowering(for: plain, backward: false), .im2col)
        let cl = try OpenCLBackend(index: 0, gemm: .rows, convolution: .implicit)
        let depthwise = try ConvPlan(input: [1, 8, 9, 9], weight: [8, 1, 3, 3], bias: nil, params: Conv2DParams(padding: 1, groups: 8))
        let pointwise = try ConvPlan(input: [1, 8, 9, 9], weight: [4, 8, 1, 1], bias: nil, params: Conv2DParams())
        let onePixel = try ConvPlan(input: [1, 8, 3, 3], weight: [4, 8, 3, 3], bias: nil, params: Conv2DParams())
        for p in [depthwise, pointwise, onePixel] { XCTAssertEqual(cl.lowering(for: p, backward: false), .im2col, p.layer) }
        XCTAssertEqual(cl.lowering(for: onePixel, backward: true), .implicit)
    }

    /// Winograd F(2x2, 3x3) and F(4x4, 3x3) under `--fast`: forward-only passes of 3x3 stride-1
    /// layers (odd sizes, sizes not a multiple of either tile, pads on some sides only, bias, skip,
    /// rectifier, image chunks), within float64's reach on every GEMM engine; exact passes and
    /// other layers keep the exact bits; the tuner's table can turn it off or pick the tile.
    func testWinogradForForwardOnlyPasses() throws {
        _ = try TestBackends.requireOpenCL()
        let reference = ReferenceBackend()
        let cases: [([Int], [Int], Conv2DParams)] = [
            ([2, 5, 11, 13], [7, 5, 3, 3], Conv2DParams(padding: 1)),
            ([3, 4, 9, 8], [6, 4, 3, 3], Conv2DParams(strides: (1, 1), pads: (top: 0, left: 2, bottom: 1, right: 0))),
            ([1, 16, 7, 7], [24, 16, 3, 3], Conv2DParams()),
            ([2, 3, 18, 17], [5, 3, 3, 3], Conv2DParams(padding: 1)),
        ]
        for (gemm, tile) in [(GEMMConfig.rows, WinogradTile.f2), (.rows, .f4), (.baseline, .f2), (.baseline, .f4), (.clblast, .f4)] {
            // A small budget splits the batch into chunks of images.
            let fast = try OpenCLBackend(index: 0, memoryBudget: 64 << 10, gemm: gemm, profileKernels: true, fastConvolutions: true,
                                         winogradTile: tile)
            let exact = try OpenCLBackend(index: 0, gemm: gemm)
            XCTAssertTrue(fast.details.mayUseFastConvolutions)
            for (index, (xs, ws, params)) in cases.enumerated() {
                let what = "\(gemm) \(tile) case \(index)"
                let x = Tensor.uniform(Shape(xs), seed: UInt64(60 + index)), w = Tensor.uniform(Shape(ws), seed: UInt64(70 + index))
                let bias = Tensor.uniform([ws[0]], seed: UInt64(80 + index))
                let yShape = try reference.conv2d(try reference.upload(x), weight: try reference.upload(w), bias: nil, params: params, activation: .identity).shape
                let skip = Tensor.uniform(yShape, seed: UInt64(90 + index))
                func run(_ b: any Backend, exact: Bool) throws -> Tensor {
                    try b.download(try b.conv2d(try b.upload(x), weight: try b.upload(w), bias: try b.upload(bias), residual: try b.upload(skip),
                                                params: params, activation: .relu, exact: exact))
                }
                _ = try fast.takeKernelProfile()
                let winograd = try run(fast, exact: false)
                XCTAssertEqual(Set(try fast.takeKernelProfile().filter { $0.name.hasPrefix("winograd") }.map(\.name)),
                               Set(["weights", "input", "output"].map { "\(tile.kernelPrefix)_\($0)" }), what)
                if let m = mismatch(doubles(winograd), doubles(try run(reference, exact: true)), rtol: 1e-4, atol: 1e-5) { XCTFail("\(what) against float64: \(m)") }
                XCTAssertEqual(try run(fast, exact: true).scalars.map(\.bitPattern), try run(exact, exact: false).scalars.map(\.bitPattern),
                               "\(what): exact passes, and backends without --fast, keep the exact bits")
                XCTAssertFalse(try fast.takeKernelProfile().contains { $0.name.hasPrefix("winograd") }, what)
            }
        }
        // Strided, dilated, grouped and 5x5 layers never take it.
        let fast = try OpenCLBackend(index: 0, fastConvolutions: true)
        for (ws, params) in [([4, 4, 3, 3], Conv2DParams(stride: 2)), ([4, 4, 3, 3], Conv2DParams(dilation: 2)),
                             ([4, 2, 3, 3], Conv2DParams(groups: 2)), ([4, 4, 5, 5], Conv2DParams())] {
            var plan = try ConvPlan(input: [1, 4, 12, 12], weight: Shape(ws), bias: nil, params: params)
            plan.exact = false
            XCTAssertFalse(fast.usesWinograd(plan), plan.layer)
        }
        // A table that measured Winograd slower for a layer turns it off there.
        var plan = try ConvPlan(input: [1, 4, 12, 12], weight: [4, 4, 3, 3], bias: nil, params: Conv2DParams(padding: 1))
        plan.exact = false
        let table = ConvolutionLoweringTable(key: "k", measured: "now", choices: [plan.layer: .init(forward: .implicit, backward: .im2col, winograd: false)])
        XCTAssertNil(ConvolutionLoweringPolicy.perLayer(table).winograd(for: plan))
        XCTAssertEqual(ConvolutionLoweringPolicy.perLayer(nil).winograd(for: plan), .f4, "12 x 12: F(4x4, 3x3) by default")
        XCTAssertTrue(fast.usesWinograd(plan))
        // The table's faster tile; a table from before F(4x4, 3x3) timed F(2x2, 3x3).
        let four = ConvolutionLoweringTable(key: "k", measured: "now", choices: [plan.layer: .init(forward: .implicit, backward: .im2col, winograd: true,
                                                                                                     winogradTile: .f4)])
        XCTAssertEqual(ConvolutionLoweringPolicy.perLayer(four).winograd(for: plan), .f4)
        let old = try JSONDecoder().decode(ConvolutionLoweringTable.self, from: Data("""
            {"key": "k", "measured": "then", "choices": {"\(plan.layer)": {"forward": "implicit", "backward": "im2col", "winograd": true}}}
            """.utf8))
        XCTAssertEqual(ConvolutionLoweringPolicy.perLayer(old).winograd(for: plan), .f2)
        // By default F(4x4, 3x3) where it takes fewer products, else F(2x2, 3x3).
        for (side, tile) in [(1, WinogradTile.f2), (2, .f2), (3, .f4), (5, .f2), (6, .f2), (7, .f4), (14, .f4), (56, .f4)] {
            var layer = try ConvPlan(input: [1, 4, side, side + 9], weight: [4, 4, 3, 3], bias: nil, params: Conv2DParams(padding: 1))
            layer.exact = false
            XCTAssertEqual(fast.winogradTile(for: layer), side == 5 || side == 6 ? .f4 : tile, "\(side) x \(side + 9)")
            var square = try ConvPlan(input: [1, 4, side, side], weight: [4, 4, 3, 3], bias: nil, params: Conv2DParams(padding: 1))
            square.exact = false
            XCTAssertEqual(fast.winogradTile(for: square), tile, "\(side) x \(side)")
        }
        XCTAssertThrowsError(try WinogradTile.requested(environment: ["XAI_WINOGRAD_TILE": "3"])) { error in
            XCTAssertTrue("\(error)".contains("XAI_WINOGRAD_TILE"), "\(error)")
        }
        XCTAssertEqual(try WinogradTile.requested(environment: ["XAI_WINOGRAD_TILE": "4"]), .f4)
        XCTAssertNil(try WinogradTile.requested(environment: [:]))
    }

    /// A weight array's Winograd transform is made once and reused while the array lives; weights
    /// uploaded later (on the same pooled buffer, once the first are gone) get their own; a
    /// reshaped view and the other tile do not read a transform made for another shape or tile.
    func testWinogradWeightTransformIsCachedPerLiveWeightArray() throws {
        _ = try TestBackends.requireOpenCL()
        let reference = ReferenceBackend()
        let fast = try OpenCLBackend(index: 0, profileKernels: true, fastConvolutions: true, winogradTile: .f4)
        let x = Tensor.uniform([2, 6, 10, 9], seed: 11)
        let params = Conv2DParams(padding: 1)
        func run(_ b: any Backend, _ w: DeviceArray, exact: Bool) throws -> Tensor {
            try b.download(try b.conv2d(try b.upload(x), weight: w, bias: nil, params: params, activation: .identity, exact: exact))
        }
        func transforms() throws -> Int { try fast.takeKernelProfile().filter { $0.name.hasSuffix("_weights") }.map(\.launches).reduce(0, +) }
        func expected(_ w: Tensor) throws -> [Double] { doubles(try run(reference, try reference.upload(w), exact: true)) }
        _ = try fast.takeKernelProfile()
        for round in 0..<3 {
            // Each round's weights replace the last round's, whose buffer the pool hands out again.
            let wt = Tensor.uniform([5, 6, 3, 3], seed: UInt64(20 + round))
            let w = try fast.upload(wt)
            for pass in 0..<3 {
                let y = try run(fast, w, exact: false)
                XCTAssertEqual(try transforms(), pass == 0 ? 1 : 0, "round \(round) pass \(pass)")
                if let m = mismatch(doubles(y), try expected(wt), rtol: 1e-4, atol: 1e-5) { XCTFail("round \(round) pass \(pass): \(m)") }
            }
            XCTAssertEqual(fast.winogradWeights.count, 1)
        }
        // Two live arrays of one shape: each runs on its own transform.
        let pair = [Tensor.uniform([5, 6, 3, 3], seed: 40), Tensor.uniform([5, 6, 3, 3], seed: 41)]
        let live = try pair.map { try fast.upload($0) }
        for i in [0, 1, 0, 1] {
            if let m = mismatch(doubles(try run(fast, live[i], exact: false)), try expected(pair[i]), rtol: 1e-4, atol: 1e-5) { XCTFail("live weights \(i): \(m)") }
        }
        XCTAssertEqual(try transforms(), 2)
        // A view of the same buffer with other channel counts is another layer.
        let flat = try fast.upload(Tensor.uniform([6, 6, 3, 3], seed: 30))
        let x6 = Tensor.uniform([1, 6, 8, 8], seed: 31), x3 = Tensor.uniform([1, 3, 8, 8], seed: 32)
        for (w, input) in [(flat, x6), (try flat.reshaped([12, 3, 3, 3]), x3)] {
            let y = try fast.download(try fast.conv2d(try fast.upload(input), weight: w, bias: nil, params: params, activation: .identity, exact: false))
            let r = try reference.download(try reference.conv2d(try reference.upload(input), weight: try reference.upload(try fast.download(w)), bias: nil,
                                                                params: params, activation: .identity))
            if let m = mismatch(doubles(y), doubles(r), rtol: 1e-4, atol: 1e-5) { XCTFail("\(w.shape): \(m)") }
        }
        XCTAssertEqual(try transforms(), 2)
        // One weight array on two image sizes, whose layers take different tiles by default.
        let perLayer = try OpenCLBackend(index: 0, fastConvolutions: true)
        let shared = Tensor.uniform([4, 3, 3, 3], seed: 33)
        let w = try perLayer.upload(shared)
        for side in [12, 6, 12, 6] {
            var plan = try ConvPlan(input: [1, 3, side, side], weight: [4, 3, 3, 3], bias: nil, params: params)
            plan.exact = false
            XCTAssertEqual(perLayer.winogradTile(for: plan), side == 12 ? .f4 : .f2)
            let input = Tensor.uniform([1, 3, side, side], seed: UInt64(34 + side))
            let y = try perLayer.download(try perLayer.conv2d(try perLayer.upload(input), weight: w, bias: nil, params: params, activation: .identity,
                                                              exact: false))
            let r = try reference.download(try reference.conv2d(try reference.upload(input), weight: try reference.upload(shared), bias: nil,
                                                                params: params, activation: .identity))
            if let m = mismatch(doubles(y), doubles(r), rtol: 1e-4, atol: 1e-5) { XCTFail("\(side) x \(side): \(m)") }
        }
        XCTAssertEqual(perLayer.winogradWeights.count, 2)
        // A table measured on other Winograd or tensor-core kernels is not read.
        let key = ConvolutionLoweringTable.key(for: fast.info, gemm: fast.gemmConfig)
        XCTAssertTrue(key.contains(" | conv.cl \(GEMMTuningCache.sourceHash("conv"))"), key)
        XCTAssertTrue(key.hasSuffix(" | mma.cl \(GEMMTuningCache.sourceHash("mma"))"), key)
    }
}
