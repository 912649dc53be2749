import XCTest
import XAI
import XAITestSupport
@testable import XAICPU
@testable import XAIGraph

/// The CPU backend on oneDNN: activations in channel blocks between layers give the same results
/// as the plain path, Winograd stays within its normalised bound, and primitives are made once.
final class OneDNNTests: XCTestCase {
    let cpu = CPUBackend(convolutionPolicy: .direct)
    let plain = CPUBackend(convolutions: .im2col)

    override func setUpWithError() throws {
        guard cpu.oneDNNDescription != nil else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("CI=true but oneDNN could not be opened") }
            throw XCTSkip("oneDNN could not be opened")
        }
    }

    /// A channel-blocked copy of `x` (a 1x1 identity convolution writes channel blocks).
    func blocked(_ x: Tensor) throws -> DeviceArray {
        let c = x.shape[1]
        var eye = Tensor(shape: [c, c, 1, 1])
        for i in 0..<c { eye[i, i, 0, 0] = 1 }
        return try cpu.conv2d(try cpu.upload(x), weight: try cpu.upload(eye), bias: nil, params: Conv2DParams(), activation: .identity)
    }

    func same(_ a: DeviceArray, _ b: DeviceArray, _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try cpu.download(a), y = try plain.download(b)
        XCTAssertEqual(x.shape, y.shape, what, file: file, line: line)
        if let m = mismatch(doubles(x), doubles(y), rtol: 1e-6, atol: 1e-7) { XCTFail("\(what): \(m)", file: file, line: line) }
    }

    /// Every op that runs on channel blocks, with a channel count that leaves a padded block tail.
    /// A pointwise convolution is fused with the depthwise one after it only when that one reads
    /// its output: here the next node is a depthwise convolution of the input, and the pointwise
    /// output meets it in a sum.
    /// The CPU's thread budget: every core unless the process was given fewer (Ray's actors get
    /// OMP_NUM_THREADS = num_cpus), XAI_THREADS first, never more than the cores, never below one.
    func testThreadBudgetFollowsTheCoresTheProcessWasGiven() {
        XCTAssertEqual(CPUBackend.threadBudget(available: 8, environment: [:]), 8)
        XCTAssertEqual(CPUBackend.threadBudget(available: 8, environment: ["OMP_NUM_THREADS": "3"]), 3)
        XCTAssertEqual(CPUBackend.threadBudget(available: 8, environment: ["OMP_NUM_THREADS": " 3 "]), 3)
        XCTAssertEqual(CPUBackend.threadBudget(available: 8, environment: ["OMP_NUM_THREADS": "3", "XAI_THREADS": "5"]), 5)
        XCTAssertEqual(CPUBackend.threadBudget(available: 8, environment: ["XAI_THREADS": "0", "OMP_NUM_THREADS": "2"]), 2)
        XCTAssertEqual(CPUBackend.threadBudget(available: 4, environment: ["OMP_NUM_THREADS": "64"]), 4)
        XCTAssertEqual(CPUBackend.threadBudget(available: 4, environment: ["OMP_NUM_THREADS": "4,2"]), 4)
        XCTAssertEqual(CPUBackend.threadBudget(available: 4, environment: ["OMP_NUM_THREADS": "-1"]), 4)
        XCTAssertEqual(CPUBackend.threadBudget(available: 0, environment: [:]), 1)
        XCTAssertEqual(CPUBackend.threadBudget(available: 4, environment: ["OMP_NUM_THREADS": "1"]), 1)
    }

    func testPointwiseAndDepthwiseAreFusedOnlyWhenOneFeedsTheOther() throws {
        let nodes = [
            Node(name: "pw", op: .conv(Conv2DParams(), activation: .identity, autoPad: .explicit), inputs: ["input", "pw.w", "pw.b"], outputs: ["mid"]),
            Node(name: "dw", op: .conv(Conv2DParams(padding: 1, groups: 6), activation: .identity, autoPad: .explicit), inputs: ["input", "dw.w", "dw.b"], outputs: ["side"]),
            Node(name: "sum", op: .binary(.add), inputs: ["mid", "side"], outputs: ["out"]),
        ]
        let graph = Graph(name: "pw_dw_apart", inputs: [ValueInfo(name: "input", shape: [nil, 6, 9, 8])], outputs: [ValueInfo(name: "out", shape: [nil, 6, 9, 8])],
                          initializers: ["pw.w": .uniform([6, 6, 1, 1], seed: 71), "pw.b": .uniform([6], seed: 72),
                                         "dw.w": .uniform([6, 1, 3, 3], seed: 73), "dw.b": .uniform([6], seed: 74)], nodes: nodes)
        XCTAssertTrue(Executor.depthwisePairs(graph).isEmpty, "the depthwise convolution does not read the pointwise output")
        let x = Tensor.uniform([2, 6, 9, 8], seed: 75)
        let reference = ReferenceBackend()
        let expected = try reference.download(try Executor(graph: graph, backend: reference).forward(try reference.upload(x)).output("out"))
        let got = try cpu.download(try Executor(graph: graph, backend: cpu).forward(try cpu.upload(x)).output("out"))
        XCTAssertNil(mismatch(doubles(got), doubles(expected)))
    }

    func testBlockedOpsEqualThePlainOnes() throws {
        for c in [20, 32] {
            // Values on a coarse grid: plenty of ties for max pooling's first-maximum rule.
            let xt = Tensor(unchecked: [2, c, 9, 7], Tensor.uniform([2, c, 9, 7], seed: 3).scalars.map { ($0 * 2).rounded() / 2 })
            let yt = Tensor.uniform([2, c, 9, 7], seed: 4)
            let x = try blocked(xt), y = try blocked(yt)
            let px = try plain.upload(xt), py = try plain.upload(yt)
            try same(x, px, "identity copy")
            for op: UnaryOp in [.relu, .leakyRelu(alpha: 0.1), .clip(-0.5, 0.5), .silu, .sigmoid, .hardSigmoid(alpha: 0.2, beta: 0.5)] {
                try same(try cpu.unary(op, x), try plain.unary(op, px), "\(op) C \(c)")
                try same(try cpu.unaryBackward(op, gradOutput: y, value: x, valueIsOutput: false),
                         try plain.unaryBackward(op, gradOutput: py, value: px, valueIsOutput: false), "\(op) backward C \(c)")
            }
            // The blocked and plain paths share their same-shape loops: check both against float64.
            let reference = ReferenceBackend()
            for op in BinaryOp.allCases {
                let expected = try reference.download(try reference.binary(op, try reference.upload(xt), try reference.upload(yt)))
                for (what, got) in [("blocked", try cpu.download(try cpu.binary(op, x, y))), ("plain", try plain.download(try plain.binary(op, px, py)))] {
                    if let m = mismatch(doubles(got), doubles(expected), rtol: 1e-6, atol: 1e-7) { XCTFail("\(op) \(what) C \(c): \(m)") }
                }
            }
            try same(try cpu.binary(.add, x, py.reshapedForTest(cpu, yt)), try plain.binary(.add, px, py), "blocked + plain C \(c)")
            for p in [Pool2DParams(.max, kernel: (3, 3), stride: (2, 2), padding: (1, 1, 1, 1), ceilMode: true),
                      Pool2DParams(.average, kernel: (2, 3), stride: (1, 2), padding: (0, 1, 1, 0), countIncludePad: true),
                      Pool2DParams(.average, kernel: (3, 3), stride: (2, 2), padding: (1, 1, 1, 1), ceilMode: true)] {
                let out = try cpu.pool2d(x, params: p)
                try same(out, try plain.pool2d(px, params: p), "\(p) C \(c)")
                let g = Tensor.uniform(out.shape, seed: 9)
                try same(try cpu.pool2dBackward(try blocked(g), input: x, params: p), try plain.pool2dBackward(try plain.upload(g), input: px, params: p),
                         "\(p) backward C \(c)")
            }
            for op in [ReduceOp.sum, .mean] {
                try same(try cpu.reduce(op, x, axes: [2, 3]), try plain.reduce(op, px, axes: [2, 3]), "\(op) over H, W C \(c)")
                let g = Tensor.uniform([2, c, 1, 1], seed: 10)
                try same(try cpu.reduceBackward(op, gradOutput: try cpu.upload(g), input: x, axes: [2, 3]),
                         try plain.reduceBackward(op, gradOutput: try plain.upload(g), input: px, axes: [2, 3]), "\(op) backward C \(c)")
            }
            // Ops with no blocked kernel read the plain copy; a reshaped view too.
            try same(try cpu.reduce(.max, x, axes: [1]), try plain.reduce(.max, px, axes: [1]), "max over channels C \(c)")
            try same(try x.reshaped([2, c * 63]), try px.reshaped([2, c * 63]), "reshaped view C \(c)")
        }
    }

    /// Channel concatenation of blocked arrays that fill whole blocks stays blocked and equals the
    /// plain one; a padded block tail, a plain input or another axis take the plain path.
    func testChannelConcatStaysBlocked() throws {
        let a = Tensor.uniform([2, 32, 5, 6], seed: 21), b = Tensor.uniform([2, 16, 5, 6], seed: 22), c = Tensor.uniform([2, 20, 5, 6], seed: 23)
        let (pa, pb, pc) = (try plain.upload(a), try plain.upload(b), try plain.upload(c))
        let (ba, bb) = (try blocked(a), try blocked(b))
        XCTAssertTrue(cpu.isChannelBlocked(ba) && cpu.isChannelBlocked(bb), "the inputs are blocked")
        let joined = try cpu.concat([try blocked(a), try blocked(b), try blocked(a)], axis: 1)
        XCTAssertTrue(cpu.isChannelBlocked(joined), "blocks in, blocks out")
        try same(joined, try plain.concat([pa, pb, pa], axis: 1), "blocked concat 32 + 16 + 32")
        // Read on by a convolution, as in a Fire module.
        let w = Tensor.uniform([8, 80, 3, 3], seed: 24)
        let conv = Conv2DParams(padding: 1)
        let convolved = try cpu.download(try cpu.conv2d(joined, weight: try cpu.upload(w), bias: nil, params: conv, activation: .relu))
        let expected = try plain.download(try plain.conv2d(try plain.concat([pa, pb, pa], axis: 1), weight: try plain.upload(w), bias: nil, params: conv, activation: .relu))
        if let m = mismatch(doubles(convolved), doubles(expected), rtol: 1e-5, atol: 1e-6) { XCTFail("conv after concat: \(m)") }
        let tail = try cpu.concat([try blocked(a), try blocked(c)], axis: 1)
        XCTAssertFalse(cpu.isChannelBlocked(tail), "20 channels leave a padded tail: plain path")
        try same(tail, try plain.concat([pa, pc], axis: 1), "concat with a padded block tail")
        try same(try cpu.concat([try blocked(a), try cpu.upload(b)], axis: 1), try plain.concat([pa, pb], axis: 1), "blocked + plain concat")
        try same(try cpu.concat([try blocked(a), try blocked(a)], axis: 2), try plain.concat([pa, pa], axis: 2), "concat along H")
        try same(try cpu.concat([try blocked(a), try blocked(a)], axis: 3), try plain.concat([pa, pa], axis: 3), "concat along W")
    }

    /// Winograd on 3x3 stride-1 layers: a normalised error bound against direct, forward and backward.
    func testWinogradStaysWithinItsBound() throws {
        let winograd = CPUBackend(convolutionPolicy: .winograd)
        guard winograd.offersWinograd else { return }  // AVX2 machines: oneDNN 2.x has no fp32 Winograd
        let x = Tensor.uniform([2, 32, 14, 14], seed: 5), w = Tensor.uniform([64, 32, 3, 3], in: -0.2...0.2, seed: 6), b = Tensor.uniform([64], seed: 7)
        let p = Conv2DParams(padding: 1)
        let direct = try cpu.download(try cpu.conv2d(try cpu.upload(x), weight: try cpu.upload(w), bias: try cpu.upload(b), params: p, activation: .relu))
        let fast = try winograd.download(try winograd.conv2d(try winograd.upload(x), weight: try winograd.upload(w), bias: try winograd.upload(b), params: p, activation: .relu))
        XCTAssertLessThan(relativeL2(doubles(fast), doubles(direct)), 1e-5)
        let g = Tensor.uniform([2, 64, 14, 14], seed: 8)
        let d1 = try cpu.download(try cpu.conv2dBackwardInput(try cpu.upload(g), weight: try cpu.upload(w), params: p, inputShape: x.shape))
        let d2 = try winograd.download(try winograd.conv2dBackwardInput(try winograd.upload(g), weight: try winograd.upload(w), params: p, inputShape: x.shape))
        XCTAssertLessThan(relativeL2(doubles(d2), doubles(d1)), 1e-5)
    }

    /// Primitives are shared by every CPU backend of the process: a Winograd convolution created on
    /// one thread and run on two others at once must give what one thread alone gets (oneDNN 2.x's
    /// library-managed scratchpad belonged to the creating thread and crashed here).
    func testSharedPrimitivesRunOnOtherThreads() throws {
        let x = Tensor.uniform([2, 32, 14, 14], seed: 15), w = Tensor.uniform([48, 32, 3, 3], in: -0.2...0.2, seed: 16)
        let g = Tensor.uniform([2, 48, 14, 14], seed: 17)
        let p = Conv2DParams(padding: 1)
        @Sendable func run(_ be: CPUBackend) throws -> (Tensor, Tensor) {
            (try be.download(try be.conv2d(try be.upload(x), weight: try be.upload(w), bias: nil, params: p, activation: .relu)),
             try be.download(try be.conv2dBackwardInput(try be.upload(g), weight: try be.upload(w), params: p, inputShape: x.shape)))
        }
        let backends: [(String, @Sendable () -> CPUBackend)] = [("winograd", { CPUBackend(convolutionPolicy: .winograd) }),
                                                                ("direct", { CPUBackend(convolutionPolicy: .direct) })]
        for (policy, make) in backends {
            let expected = try run(make())
            let results = ResultBox()
            DispatchQueue.concurrentPerform(iterations: 4) { k in
                let be = make()
                for _ in 0..<5 { results.append(k, Result { try run(be) }) }
            }
            XCTAssertEqual(results.count, 20, "\(policy)")
            for r in results.all {
                let (y, d) = try r.get()
                XCTAssertEqual(y, expected.0, "\(policy) forward on another thread")
                XCTAssertEqual(d, expected.1, "\(policy) backward on another thread")
            }
        }
    }

    /// Layers where oneDNN has only its reference kernel (8 input channels in 16-channel blocks, on
    /// the small fixture ResNet) take the im2col path: no primitive runs on "ref:any".
    func testNoConvolutionRunsOnAReferenceKernel() throws {
        let model = try ExplainedModel(graph: try Models.load(fixturesDirectory + "/models/small_resnet/model.onnx"), backend: cpu)
        let input = try NPY.read(fixturesDirectory + "/models/small_resnet/input.npy")
        _ = try Saliency(model: model).attribute(input)
        let implementations = CPUBackend.oneDNNImplementations
        XCTAssertFalse(implementations.isEmpty)
        XCTAssertEqual(implementations.keys.filter { $0.hasPrefix("ref") }, [], "\(implementations)")
    }

    /// A method running many batches makes its primitives once: a second run of the same shapes
    /// creates none.
    func testPrimitivesAreMadeOnce() throws {
        let model = try ExplainedModel(graph: try Models.load(fixturesDirectory + "/models/small_resnet/model.onnx"), backend: cpu)
        let input = try NPY.read(fixturesDirectory + "/models/small_resnet/input.npy")
        let ig = IntegratedGradients(model: model, steps: 8, internalBatchSize: 4)
        _ = try ig.attribute(input)
        let before = CPUBackend.oneDNNPrimitivesCreated
        _ = try ig.attribute(input)
        _ = try ig.attribute(input)
        XCTAssertEqual(CPUBackend.oneDNNPrimitivesCreated, before, "a repeated run created primitives")
        XCTAssertGreaterThan(before, 0)
    }
}

extension OneDNNTests {
    /// Each layer's weights are reordered once per format: a method alternating batch sizes (the
    /// batch-1 logits, full batches, a partial last one) reuses them. Winograd picks its weights'
    /// blocking per minibatch, and before this was kept per format, the weights were transformed
    /// again before every Winograd convolution (ResNet-50's IG spent 15 % of its time there).
    func testWeightsAreReorderedOncePerFormatAcrossBatchSizes() throws {
        let be = CPUBackend(convolutionPolicy: offersWinograd ? .winograd : .direct)
        let w = try be.upload(Tensor.uniform([64, 64, 3, 3], in: -0.1...0.1, seed: 41))
        let p = Conv2DParams(padding: 1)
        func round() throws {
            for batch in [1, 16, 3] {
                let x = try be.upload(Tensor.uniform([batch, 64, 14, 14], seed: UInt64(50 + batch)))
                let y = try be.conv2d(x, weight: w, bias: nil, params: p, activation: .relu)
                _ = try be.conv2dBackwardInput(y, weight: w, params: p, inputShape: x.shape)
            }
        }
        try round()
        let before = CPUBackend.oneDNNWeightReorders
        XCTAssertGreaterThan(before, 0)
        try round()
        try round()
        XCTAssertEqual(CPUBackend.oneDNNWeightReorders, before, "weights reordered again for a batch size seen before")
    }

    private var offersWinograd: Bool { CPUBackend(convolutionPolicy: .winograd).offersWinograd }

    /// A stem's input gradient (3 channels, 7x7 stride 2, as ResNet's) gathered from oneDNN's
    /// column product equals the float64 one, with the images in one group and one at a time.
    func testStemInputGradientInImageGroups() throws {
        let reference = ReferenceBackend()
        let params = Conv2DParams(stride: 2, padding: 3)
        let x = Shape([3, 3, 30, 27])
        let wt = Tensor.uniform([24, 3, 7, 7], in: -0.2...0.2, seed: 81)
        let g = Tensor.uniform(try params.outputShape(input: x, weight: wt.shape), seed: 82)
        let expected = try reference.download(try reference.conv2dBackwardInput(try reference.upload(g), weight: try reference.upload(wt),
                                                                                 params: params, inputShape: x))
        for workspace in [64 << 20, 0] {
            let be = CPUBackend(workspaceBudget: workspace, convolutionPolicy: .direct)
            let plan = try ConvPlan(gradient: g.shape, weight: wt.shape, inputShape: x, params: params)
            let got = try XCTUnwrap(try be.dnnlStemBackward(try be.upload(g), weight: try be.upload(wt), plan: plan, try XCTUnwrap(be.dnnl)),
                                    "oneDNN takes the stem")
            if let m = mismatch(doubles(try be.download(got)), doubles(expected), rtol: 1e-5, atol: 1e-6) { XCTFail("workspace \(workspace): \(m)") }
        }
    }

    /// A stride-1 layer's input gradient computed as the forward convolution of the output
    /// gradient by flipped, transposed weights equals the float64 backward convolution, with
    /// symmetric and one-sided pads, Cin != Cout and odd sizes; forward by direct and by Winograd.
    func testInputGradientAsAFlippedForwardConvolution() throws {
        guard offersWinograd else { return }  // the route is only taken where Winograd could run it
        let reference = ReferenceBackend()
        let cases: [(cin: Int, cout: Int, h: Int, w: Int, pads: (Int, Int, Int, Int))] = [
            (32, 48, 9, 11, (1, 1, 1, 1)), (16, 32, 7, 6, (0, 0, 0, 0)), (48, 16, 8, 9, (2, 0, 1, 2)), (64, 64, 14, 14, (1, 1, 1, 1)),
        ]
        for (k, c) in cases.enumerated() {
            let params = Conv2DParams(strides: (1, 1), pads: c.pads)
            let x = [2, c.cin, c.h, c.w]
            let wt = Tensor.uniform([c.cout, c.cin, 3, 3], in: -0.2...0.2, seed: UInt64(60 + k))
            let plan = try ConvPlan(input: Shape(x), weight: wt.shape, bias: nil, params: params)
            let g = Tensor.uniform(plan.output, seed: UInt64(70 + k))
            let expected = try reference.download(try reference.conv2dBackwardInput(try reference.upload(g), weight: try reference.upload(wt),
                                                                                     params: params, inputShape: Shape(x)))
            for policy in [ConvolutionPolicy.direct, .winograd] {
                let be = CPUBackend(convolutionPolicy: policy, backwardRoute: .flippedForward)
                let dnnl = try XCTUnwrap(be.dnnl)
                XCTAssertNotNil(try be.flippedForwardPlan(plan, dnnl), "case \(k): the route applies")
                let got = try be.download(try be.conv2dBackwardInput(try be.upload(g), weight: try be.upload(wt), params: params, inputShape: Shape(x)))
                if policy == .direct {
                    if let m = mismatch(doubles(got), doubles(expected), rtol: 1e-5, atol: 1e-6) { XCTFail("case \(k) direct: \(m)") }
                } else {
                    XCTAssertLessThan(relativeL2(doubles(got), doubles(expected)), 1e-5, "case \(k) Winograd")
                }
            }
        }
        // Strided, dilated and grouped layers keep the backward-data primitive.
        let be = CPUBackend(convolutionPolicy: .winograd, backwardRoute: .flippedForward)
        let dnnl = try XCTUnwrap(be.dnnl)
        for params in [Conv2DParams(stride: 2, padding: 1), Conv2DParams(padding: 2, dilation: 2), Conv2DParams(padding: 1, groups: 2)] {
            let plan = try ConvPlan(input: [1, 32, 10, 10], weight: [32, 32 / params.groups, 3, 3], bias: nil, params: params)
            XCTAssertNil(try be.flippedForwardPlan(plan, dnnl), "\(params)")
        }
    }
}

/// Results gathered from several threads.
private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<(Tensor, Tensor), Error>] = []
    func append(_ k: Int, _ r: Result<(Tensor, Tensor), Error>) { lock.lock(); results.append(r); lock.unlock() }
    var count: Int { lock.lock(); defer { lock.unlock() }; return results.count }
    var all: [Result<(Tensor, Tensor), Error>] { lock.lock(); defer { lock.unlock() }; return results }
}

private extension DeviceArray {
    /// The same values uploaded to `backend` as a plain array (for mixed-layout inputs).
    func reshapedForTest(_ backend: CPUBackend, _ t: Tensor) throws -> DeviceArray { try backend.upload(t) }
}

extension OneDNNTests {
    /// Parallel loops run on oneDNN's OpenMP team (Debian's oneDNN brings libgomp), and every
    /// iteration runs exactly once, however the chunks fall to the threads.
    func testParallelLoopsRunOnOneDNNsTeamAndCoverEveryIndex() throws {
        XCTAssertTrue(CPUBackend.loopsRunOnOpenMPTeam, "no OpenMP runtime found beside oneDNN: loops ran on Dispatch")
        for count in [1, 2, 7, 1000, 100_003] {
            let hits = UnsafeMutablePointer<Int32>.allocate(capacity: count)
            defer { hits.deallocate() }
            hits.initialize(repeating: 0, count: count)
            cpu.parallelFor(count, costPerItem: 1 << 16) { r in for i in r { hits[i] += 1 } }
            let wrong = (0..<count).filter { hits[$0] != 1 }
            XCTAssertTrue(wrong.isEmpty, "\(count) iterations: \(wrong.count) ran other than once (first \(wrong.prefix(3)))")
        }
    }
}

extension OneDNNTests {
    /// A 1x1 convolution and the depthwise one after it, fused into one oneDNN primitive, give
    /// what the two convolutions give run apart: stride 1 and 2, ReLU6 after each (MobileNetV2's
    /// block). Whether oneDNN 2.6 offers a JIT kernel for the pair depends on the shapes and on
    /// the machine (its heuristics weigh the caches): small shapes get its reference fusion, which
    /// is refused (`nil`, and the caller runs the two); on the AMD EPYC (Zen 4) machines the first
    /// two shapes got one, on an Intel Xeon (AVX-512, 2026-12-06) only the next two, MobileNetV2's
    /// own (112 x 112 at stride 2, 56 x 56 at stride 1). Some shape must fuse, and each that does
    /// must agree.
    func testFusedPointwiseThenDepthwiseEqualsTheTwoApart() throws {
        try XCTSkipIf(cpu.dnnl?.blockSize != 16, "the fused pair runs where oneDNN blocks channels by 16")
        let relu6 = UnaryOp.clip(0, 6)
        var fusedShapes = 0
        defer { XCTAssertGreaterThan(fusedShapes, 0, "no pair was fused") }
        for (size, stride, cin, channels) in [(28, 1, 32, 192), (56, 2, 16, 96), (112, 2, 16, 96), (56, 1, 24, 144), (21, 2, 24, 56)] {
            let x = try cpu.upload(.uniform([4, cin, size, size], seed: UInt64(size)))
            let w = try cpu.upload(.uniform([channels, cin, 1, 1], in: -0.5...0.5, seed: 3))
            let b = try cpu.upload(.uniform([channels], seed: 4))
            let d = try cpu.upload(.uniform([channels, 1, 3, 3], seed: 5))
            let c = try cpu.upload(.uniform([channels], seed: 6))
            let first = try ConvPlan(input: x.shape, weight: w.shape, bias: b.shape, params: Conv2DParams())
            let dwParams = Conv2DParams(stride: stride, padding: 1, groups: channels)
            let second = try ConvPlan(input: first.output, weight: d.shape, bias: c.shape, params: dwParams)
            let before = CPUBackend.oneDNNFusedDepthwiseRuns
            let fused = try cpu.conv2dThenDepthwise(x, pointwise: ConvolutionStep(weight: w, bias: b, plan: first, activation: relu6),
                                                    depthwise: ConvolutionStep(weight: d, bias: c, plan: second, activation: relu6))
            guard let fused else { continue }
            XCTAssertEqual(CPUBackend.oneDNNFusedDepthwiseRuns, before + 1)
            fusedShapes += 1
            let mid = try cpu.conv2d(x, weight: w, bias: b, params: Conv2DParams(), activation: relu6)
            let apart = try cpu.conv2d(mid, weight: d, bias: c, params: dwParams, activation: relu6)
            XCTAssertEqual(fused.shape, apart.shape)
            let (f, a) = (doubles(try cpu.download(fused)), doubles(try cpu.download(apart)))
            XCTAssertGreaterThan(Set(a).count, a.count / 4, "the comparison needs outputs that vary")
            if let m = mismatch(f, a, rtol: 1e-5, atol: 1e-6) { XCTFail("size \(size), stride \(stride): \(m)") }
        }
    }

    /// MobileNetV2's forward passes that keep nothing for backward run its expansion and depthwise
    /// layers fused, and give the logits of the pass that runs every layer apart (forBackward).
    func testMobileNetForwardFusesItsDepthwisePairs() throws {
        try XCTSkipIf(cpu.dnnl?.blockSize != 16, "the fused pair runs where oneDNN blocks channels by 16")
        let graph = try Zoo.model("mobilenet_v2", size: 224, seed: 9).optimized()
        let executor = Executor(graph: graph, backend: cpu)
        let input = try cpu.upload(.uniform([4, 3, 224, 224], seed: 17))
        let before = CPUBackend.oneDNNFusedDepthwiseRuns
        let fused = try cpu.download(try executor.forward(input).output("logits"))
        let runs = CPUBackend.oneDNNFusedDepthwiseRuns - before
        // 16 blocks expand; at batch 32 oneDNN 2.6 has a JIT kernel for 13 of the pairs, at batch 4
        // for fewer (the first block's at least).
        XCTAssertGreaterThanOrEqual(runs, 1, "pairs fused in one pass")
        let apart = try cpu.download(try executor.forward(input, forBackward: true).output("logits"))
        XCTAssertEqual(CPUBackend.oneDNNFusedDepthwiseRuns - before, runs, "a pass for backward fused a pair")
        XCTAssertLessThan(relativeL2(doubles(fused), doubles(apart)), 1e-5)
        // An expansion output asked for with `keep` (a CAM layer, say) is computed, not fused away.
        let expansion = try XCTUnwrap(zip(graph.nodes, graph.nodes.dropFirst()).first { a, b in
            guard case .conv = a.op, case .conv(let q, _, _) = b.op else { return false }
            return q.groups > 1 && b.inputs.first == a.outputs.first && graph.initializers[a.inputs[1]]?.shape[2] == 1
        }?.0.outputs.first)
        let kept = try cpu.download(try executor.forward(input, keep: [expansion]).kept(expansion))
        let keptApart = try cpu.download(try executor.forward(input, keep: [expansion], forBackward: true).kept(expansion))
        XCTAssertEqual(kept.scalars, keptApart.scalars, "the kept expansion \(expansion)")
    }
}
