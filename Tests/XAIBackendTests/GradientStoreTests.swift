import Foundation
import XCTest
import XAI
import XAITestSupport
@testable import XAIOpenCL
@testable import XAIGraph

/// Fused gradient stores (``GradientStore``, issue 32's "one launch where there are three", for
/// the backward): an input gradient plus the gradient its value already has, times the derivative
/// of the activation that made the value, in the convolution's own store. The result must be the
/// three operations' (the convolution's gradient, an add, an activation's backward), bit for bit,
/// on every lowering and GEMM engine, with no launch beyond the convolution's; and within
/// float64's rounding of the same composition.
final class GradientStoreTests: XCTestCase {
    /// Four of ImplicitConvolutionTests' cases (pads, dilation and groups, a 1x1 layer at stride 2,
    /// one output pixel), a pointwise layer, and a depthwise layer (its own kernel).
    static let cases = [0, 2, 5, 6].map { ImplicitConvolutionTests.cases[$0] } + [
        // A pointwise layer at unit stride: its input gradient is a plain GEMM (gemm_rows on PoCL,
        // gemm_tiled, gemm_mma, CLBlast plus the epilogue), batched over the images.
        ImplicitConvolutionTests.Case(x: [3, 8, 5, 7], w: [6, 8, 1, 1], params: Conv2DParams()),
        ImplicitConvolutionTests.Case(x: [2, 6, 7, 9], w: [6, 1, 3, 3], params: Conv2DParams(padding: 1, groups: 6)),
    ]

    /// What a store may do: add, gate, or both; gates of several activations (their parameters
    /// reach the kernels as the gate's).
    static let stores: [(label: String, accumulate: Bool, gate: UnaryOp?)] = [
        ("add", true, nil), ("relu", false, .relu), ("add+relu", true, .relu),
        ("add+clip", true, .clip(0, 0.6)), ("add+leaky", true, .leakyRelu(alpha: 0.1)), ("sigmoid", false, .sigmoid),
    ]

    /// The operands of one store on `backend`, drawn with `seed`: an output gradient, weights, the
    /// gradient already accumulated, and the activation's output (the activation applied to a
    /// uniform draw in [-1, 1), so a rectifier's output has zeros to mask).
    static func operands(_ c: ImplicitConvolutionTests.Case, _ gate: UnaryOp?, on b: any Backend, seed: UInt64) throws
        -> (gy: DeviceArray, w: DeviceArray, accumulated: DeviceArray, output: DeviceArray?) {
        let output = try ConvPlan(input: Shape(c.x), weight: Shape(c.w), bias: nil, params: c.params).output
        let pre = try b.upload(Tensor.uniform(Shape(c.x), seed: seed + 3))
        return (try b.upload(Tensor.uniform(output, seed: seed)), try b.upload(Tensor.uniform(Shape(c.w), seed: seed + 1)),
                try b.upload(Tensor.uniform(Shape(c.x), seed: seed + 2)), try gate.map { try b.unary($0, pre) })
    }

    /// The fused store and the composition on one backend.
    static func both(_ c: ImplicitConvolutionTests.Case, accumulate: Bool, gate: UnaryOp?, on b: any Backend, seed: UInt64) throws
        -> (fused: Tensor, composed: Tensor) {
        let (gy, w, accumulated, output) = try operands(c, gate, on: b, seed: seed)
        let store = GradientStore(accumulated: accumulate ? accumulated : nil, activation: gate.flatMap { g in output.map { (g, $0) } })
        let fused = try b.conv2dBackwardInput(gy, weight: w, params: c.params, inputShape: Shape(c.x), store: store)
        var composed = try b.conv2dBackwardInput(gy, weight: w, params: c.params, inputShape: Shape(c.x))
        if accumulate { composed = try b.binary(.add, accumulated, composed) }
        if let gate, let output { composed = try b.unaryBackward(gate, gradOutput: composed, value: output, valueIsOutput: true) }
        return (try b.download(fused), try b.download(composed))
    }

    func testFusedStoresHaveTheComposedBitsOnEveryLoweringAndEngine() throws {
        _ = try TestBackends.requireOpenCL()
        let reference = ReferenceBackend()
        var backends: [(String, OpenCLBackend)] = []
        for gemm in [GEMMConfig.rows, .baseline, try GEMMConfig(parsing: "tiled/ts32/wpt4/tk8/vw4/db/sb4"), .clblast] {
            for lowering in [ConvolutionLowering.implicit, .im2col] {
                backends.append(("\(gemm) \(lowering)", try OpenCLBackend(index: 0, gemm: gemm, profileKernels: true, convolution: lowering)))
            }
        }
        for lowering in [ConvolutionLowering.implicit, .im2col] {
            // 3xTF32: the tensor-core kernels at fp32-class accuracy.
            backends.append(("mma emulated \(lowering)", try OpenCLBackend(index: 0, profileKernels: true, convolution: lowering,
                                                                           arithmetic: .tf32x3, tensorCorePath: .emulated)))
        }
        for (label, cl) in backends {
            for (index, c) in Self.cases.enumerated() {
                let plan = try ConvPlan(input: Shape(c.x), weight: Shape(c.w), bias: nil, params: c.params)
                if index == 4 { XCTAssertTrue(plan.isPointwise, "case 4 must reach the GEMMs") }
                for (storeIndex, store) in Self.stores.enumerated() {
                    let what = "\(label) case \(index) x\(c.x) w\(c.w) \(store.label)"
                    let seed = UInt64(100 * index + 10 * storeIndex + 7)
                    _ = try cl.takeKernelProfile()
                    let before = cl.transfers
                    let (gy, w, accumulated, output) = try Self.operands(c, store.gate, on: cl, seed: seed)
                    let prepared = cl.transfers.since(before).kernelLaunches
                    _ = try cl.conv2dBackwardInput(gy, weight: w, params: c.params, inputShape: Shape(c.x))
                    let plain = cl.transfers.since(before).kernelLaunches - prepared
                    _ = try cl.takeKernelProfile()
                    let start = cl.transfers
                    let gate = store.gate.flatMap { g in output.map { (g, $0) } }
                    _ = try cl.conv2dBackwardInput(gy, weight: w, params: c.params, inputShape: Shape(c.x),
                                                   store: GradientStore(accumulated: store.accumulate ? accumulated : nil, activation: gate))
                    let fusedLaunches = cl.transfers.since(start).kernelLaunches
                    let kernels = Set(try cl.takeKernelProfile().map(\.name))
                    if plan.isPointwise && label.hasPrefix("clblast") {
                        // CLBlast's GEMM, then our epilogue (one launch for the add and the gate).
                        XCTAssertEqual(fusedLaunches, plain + 1, what)
                        XCTAssertTrue(kernels.isDisjoint(with: ["binary_same", "unary_backward"]), "\(what): \(kernels.sorted())")
                    } else {
                        XCTAssertEqual(fusedLaunches, plain, "\(what): the store took launches of its own")
                        XCTAssertTrue(kernels.isDisjoint(with: ["binary_same", "unary_backward", "gemm_epilogue"]), "\(what): \(kernels.sorted())")
                    }
                    let (fused, composed) = try Self.both(c, accumulate: store.accumulate, gate: store.gate, on: cl, seed: seed)
                    XCTAssertEqual(fused.scalars.map(\.bitPattern), composed.scalars.map(\.bitPattern), "\(what): bits")
                    let (exact, _) = try Self.both(c, accumulate: store.accumulate, gate: store.gate, on: reference, seed: seed)
                    if let m = mismatch(doubles(fused), doubles(exact), rtol: 1e-4, atol: 1e-4) { XCTFail("\(what) against float64: \(m)") }
                    if store.gate == .relu {
                        // The rectifier's zeros mask the gradient: some elements are exactly zero
                        // where the sum alone is not.
                        let masked = zip(fused.scalars, composed.scalars).filter { $0.0 == 0 }.count
                        XCTAssertGreaterThan(masked, fused.scalars.count / 4, what)
                    }
                }
            }
        }
    }

    /// A ResNet-18's backward with fused stores gives the bits of the backward that runs every sum
    /// and every rectifier's derivative apart, on every backend: to the input alone, and to the
    /// input with an inner rectifier's output (whose own gradient no store may gate), under the
    /// gradient and under guided backpropagation (its rectifier rule is not fused: only the sums
    /// are). On OpenCL, under the gradient, those sums and derivatives take no launches of their
    /// own but two: the rectifiers whose output something other than a convolution reads first (the
    /// stem's, into max pooling; the last block's, into global pooling).
    func testAResNetsBackwardHasTheSameBitsWithFewerLaunches() throws {
        let graph = try Zoo.model("resnet18", size: 48, seed: 21).optimized()
        let input = try XCTUnwrap(graph.imageInput?.name), out = graph.outputs[0].name
        let probe = Executor(graph: graph, backend: CPUBackend())
        // A rectifier's output inside the network, read first by a convolution (fused when not asked for).
        let inner = try XCTUnwrap(graph.nodes.compactMap { node -> String? in
            guard let site = probe.activationOutputs[node.outputs[0]], site.activation == .relu,
                  case .conv = graph.nodes[site.firstReader].op else { return nil }
            return node.outputs[0]
        }.dropFirst(3).first)
        var backends = TestBackends.all()
        if TestBackends.openCL() != nil { backends.append(("opencl-profiled", try OpenCLBackend(index: 0, profileKernels: true))) }
        for (label, b) in backends {
            let fused = Executor(graph: graph, backend: b, fusesGradientStores: true), apart = Executor(graph: graph, backend: b, fusesGradientStores: false)
            let x = try b.upload(Tensor.uniform([2, 3, 48, 48], in: -1...1, seed: 22))
            let seed = try b.upload(Tensor.uniform([2, 1000], in: -1...1, seed: 23))
            for (rulesLabel, rules) in [("gradient", PropagationRules.gradient), ("guided", PropagationRules(relu: .guided))] {
                for wrt in [[input], [input, inner]] {
                    let what = "\(label) \(rulesLabel) wrt \(wrt)"
                    let profiled = b as? OpenCLBackend
                    let onePassStores = CPUBackend.fusedGradientStoreRuns
                    _ = try profiled?.takeKernelProfile()
                    let g1 = try fused.backward(try fused.forward(x, forBackward: true), seeds: [out: seed], wrt: Set(wrt), rules: rules)
                    let k1 = try profiled?.takeKernelProfile() ?? []
                    let g0 = try apart.backward(try apart.forward(x, forBackward: true), seeds: [out: seed], wrt: Set(wrt), rules: rules)
                    let k0 = try profiled?.takeKernelProfile() ?? []
                    for name in wrt {
                        let (a, e) = (try b.download(try XCTUnwrap(g1[name])), try b.download(try XCTUnwrap(g0[name])))
                        XCTAssertEqual(a.scalars.map(\.bitPattern), e.scalars.map(\.bitPattern), "\(what): \(name)")
                        XCTAssertGreaterThan(Set(a.scalars).count, a.scalars.count / 4, "\(what): \(name) varies")
                    }
                    if b is CPUBackend {
                        // The CPU's stores ran in the one pass (its operands share the gradient's
                        // layout), not composed. Under the gradient: 15 rectifiers (8 blocks' first
                        // convolutions, 7 blocks' outputs) and the first block's sum (the others share
                        // their rectifier's store); the inner value, a block's output, asked for keeps
                        // its sum's store without the gate. Guided: the 8 sums.
                        let expected = rules.relu == .gradient ? 16 : 8
                        XCTAssertEqual(CPUBackend.fusedGradientStoreRuns - onePassStores, expected, what)
                    }
                    guard label == "opencl-profiled" else { continue }
                    func count(_ k: [KernelTime], _ kernel: String) -> Int { k.filter { $0.name == kernel }.reduce(0) { $0 + $1.launches } }
                    // Apart: 17 rectifiers (the stem, 8 blocks' first and 8 blocks' last
                    // convolutions) and 8 sums (each block's input feeds its first convolution and
                    // its shortcut).
                    let (unary0, sums0) = (count(k0, "unary_backward"), count(k0, "binary_same"))
                    XCTAssertEqual(sums0, 8, what)
                    if rules.relu == .gradient {
                        XCTAssertEqual(unary0, 17, what)
                        // Asked for, the inner value's gradient is not gated: its producer's
                        // derivative is a launch again.
                        XCTAssertEqual(count(k1, "unary_backward"), wrt.count == 1 ? 2 : 3, what)
                        XCTAssertEqual(count(k1, "binary_same"), 0, what)
                    } else {
                        XCTAssertEqual(count(k1, "binary_same"), 0, what)
                        XCTAssertEqual(count(k1, "unary_backward"), unary0, what)
                    }
                }
            }
        }
    }

    /// A MobileNetV2's backward, whose rectifiers (ReLU6, a clip) are read first by depthwise
    /// layers as often as by 1x1 ones, and whose residual blocks sum two gradients: fused stores
    /// give the bits of the backward that runs them apart, on every backend. On OpenCL, under the
    /// gradient, one derivative keeps a launch of its own (the last rectifier's, into global
    /// pooling) and no sum does.
    func testAMobileNetsBackwardThroughDepthwiseLayersHasTheSameBitsWithFewerLaunches() throws {
        let graph = try Zoo.model("mobilenet_v2", size: 64, seed: 31).optimized()
        let input = try XCTUnwrap(graph.imageInput?.name), out = graph.outputs[0].name
        var backends = TestBackends.all()
        if TestBackends.openCL() != nil { backends.append(("opencl-profiled", try OpenCLBackend(index: 0, profileKernels: true))) }
        for (label, b) in backends {
            let x = try b.upload(Tensor.uniform([2, 3, 64, 64], in: -1...1, seed: 32))
            let seed = try b.upload(Tensor.uniform([2, 1000], in: -1...1, seed: 33))
            let profiled = b as? OpenCLBackend
            var results: [Tensor] = [], profiles: [[KernelTime]] = []
            for fuses in [true, false] {
                let executor = Executor(graph: graph, backend: b, fusesGradientStores: fuses)
                _ = try profiled?.takeKernelProfile()
                let g = try executor.backward(try executor.forward(x, forBackward: true), seeds: [out: seed], wrt: [input])
                profiles.append(try profiled?.takeKernelProfile() ?? [])
                results.append(try b.download(try XCTUnwrap(g[input])))
            }
            XCTAssertEqual(results[0].scalars.map(\.bitPattern), results[1].scalars.map(\.bitPattern), label)
            XCTAssertGreaterThan(Set(results[0].scalars).count, results[0].scalars.count / 4, "\(label): the gradient varies")
            guard label == "opencl-profiled" else { continue }
            func count(_ k: [KernelTime], _ kernel: String) -> Int { k.filter { $0.name == kernel }.reduce(0) { $0 + $1.launches } }
            // Apart: 35 rectifiers (the stem, the first block's depthwise layer, the 16 other
            // blocks' expansion and depthwise layers, the last 1x1 layer) and 10 residual sums.
            XCTAssertEqual(count(profiles[1], "unary_backward"), 35, label)
            XCTAssertEqual(count(profiles[1], "binary_same"), 10, label)
            XCTAssertEqual(count(profiles[0], "unary_backward"), 1, label)
            XCTAssertEqual(count(profiles[0], "binary_same"), 0, label)
        }
    }

    /// Activations whose backward is not idempotent (leaky ReLU, sigmoid, clip), fused into a
    /// chain of convolutions with a skip: each derivative is taken once, in the store of the value's
    /// last gradient (a sum there, where the skip adds its share), and the backward has the bits of
    /// the one that runs them apart, on every backend.
    func testEachActivationsDerivativeIsTakenOnceWhateverTheActivation() throws {
        func conv(_ name: String, _ inputs: [String], _ activation: UnaryOp) -> Node {
            Node(name: name, op: .conv(Conv2DParams(padding: 1), activation: activation, autoPad: .explicit), inputs: inputs, outputs: [name])
        }
        let nodes = [
            conv("a", ["input", "wa"], .leakyRelu(alpha: 0.1)),
            conv("b", ["a", "wb"], .sigmoid),
            conv("c", ["b", "wc", "", "a"], .clip(0, 0.5)),
            conv("d", ["c", "wd"], .relu),
            Node(name: "pool", op: .globalAveragePool, inputs: ["d"], outputs: ["p"]),
            Node(name: "flat", op: .flatten(axis: 1), inputs: ["p"], outputs: ["logits"]),
        ]
        let weights = ["wa": Tensor.uniform([4, 3, 3, 3], seed: 70), "wb": .uniform([4, 4, 3, 3], seed: 71),
                       "wc": .uniform([4, 4, 3, 3], seed: 72), "wd": .uniform([5, 4, 3, 3], seed: 73)]
        let graph = Graph(name: "chain", inputs: [ValueInfo(name: "input", shape: [nil, 3, 9, 7])],
                          outputs: [ValueInfo(name: "logits", shape: [nil, 5])], initializers: weights, nodes: nodes)
        for (label, b) in TestBackends.all() {
            let x = try b.upload(Tensor.uniform([2, 3, 9, 7], in: -1...1, seed: 74))
            let seed = try b.upload(Tensor.uniform([2, 5], in: -1...1, seed: 75))
            var results: [Tensor] = []
            for fuses in [true, false] {
                let executor = Executor(graph: graph, backend: b, fusesGradientStores: fuses)
                let g = try executor.backward(try executor.forward(x, forBackward: true), seeds: ["logits": seed], wrt: ["input"])
                results.append(try b.download(try XCTUnwrap(g["input"])))
            }
            XCTAssertEqual(results[0].scalars.map(\.bitPattern), results[1].scalars.map(\.bitPattern), label)
            XCTAssertGreaterThan(Set(results[0].scalars).count, results[0].scalars.count / 2, "\(label): the gradient varies")
        }
    }

    /// The checked entry point refuses a store whose arrays are not shaped as the input (here as
    /// many elements, height and width swapped), naming which, on every backend; an empty store
    /// is the plain gradient.
    func testStoresOfTheWrongShapeAreRefusedAndAnEmptyStoreIsThePlainGradient() throws {
        let c = ImplicitConvolutionTests.cases[0]
        for (_, b) in TestBackends.all() {
            let (gy, w, _, _) = try Self.operands(c, nil, on: b, seed: 3)
            let wrong = try b.upload(Tensor.uniform([2, 5, 13, 11], seed: 4))
            for (store, what) in [(GradientStore(accumulated: wrong), "accumulated gradient"), (GradientStore(activation: (.relu, wrong)), "activation output")] {
                XCTAssertThrowsError(try b.conv2dBackwardInput(gy, weight: w, params: c.params, inputShape: Shape(c.x), store: store), "\(b.name)") { error in
                    guard case XAIError.shapeMismatch(let op, _, let got) = error else { return XCTFail("\(b.name): \(error)") }
                    XCTAssertTrue(op.contains(what), "\(b.name): \(op)")
                    XCTAssertEqual(got, [Shape([2, 5, 13, 11])], b.name)
                }
            }
            let plain = try b.download(try b.conv2dBackwardInput(gy, weight: w, params: c.params, inputShape: Shape(c.x)))
            let empty = try b.download(try b.conv2dBackwardInput(gy, weight: w, params: c.params, inputShape: Shape(c.x),
                                                                 store: GradientStore(activation: (.identity, wrong))))
            XCTAssertEqual(empty.scalars.map(\.bitPattern), plain.scalars.map(\.bitPattern), b.name)
        }
    }
}
