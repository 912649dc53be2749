import XCTest
import XAI
import XAITestSupport

/// The op table (OpCases.swift) holds geometries someone thought of. These are drawn: seeded random
/// convolutions (kernel, per-axis strides and dilations, four one-sided pads, groups from one to
/// depthwise with a channel multiplier), poolings (max and average, pads up to the kernel, ceil
/// mode, counted pads) and broadcasts (every operand's axes kept, set to one or dropped), each run
/// on every backend against the float64 reference, forward and backward, with the reference's own
/// backward checked against central differences. A failure prints the case, which reruns alone
/// from its seed.
final class RandomAttributeTests: XCTestCase {
    let reference = ReferenceBackend()

    private func draw(_ rng: inout SeededGenerator, _ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(rng.next() % UInt64(range.count))
    }

    /// Loss `sum(seed * y)` in float64 and its gradient by central differences, for every element of one input.
    private func finiteDifferences(_ forward: ([DeviceArray]) throws -> DeviceArray, _ inputs: [DeviceArray], of index: Int,
                                   seed: [Double]) throws -> [Double] {
        var values = try reference.values(inputs[index])
        var numeric = [Double](repeating: 0, count: values.count)
        let h = 1e-6
        func loss(_ v: [Double]) throws -> Double {
            var perturbed = inputs
            perturbed[index] = reference.array(inputs[index].shape, v)
            return zip(try reference.values(try forward(perturbed)), seed).reduce(0) { $0 + $1.0 * $1.1 }
        }
        for i in 0..<values.count {
            let original = values[i]
            values[i] = original + h
            let plus = try loss(values)
            values[i] = original - h
            let minus = try loss(values)
            values[i] = original
            numeric[i] = (plus - minus) / (2 * h)
        }
        return numeric
    }

    /// Forward on every backend against the reference; each listed input's gradient on every
    /// backend against the reference's, and the reference's against finite differences.
    private func check(_ what: String, inputs: [Tensor], gradientsOf: [Int], seed: UInt64,
                       forward: (any Backend, [DeviceArray]) throws -> DeviceArray,
                       backward: (any Backend, [DeviceArray], DeviceArray) throws -> [DeviceArray]) throws {
        let refInputs = try inputs.map(reference.upload)
        let expected = try reference.download(try forward(reference, refInputs))
        let gradSeed = Tensor.uniform(expected.shape, in: -1...1, seed: seed)
        let refGrads = try backward(reference, refInputs, try reference.upload(gradSeed))
        for (slot, index) in gradientsOf.enumerated() {
            let numeric = try finiteDifferences({ try forward(reference, $0) }, refInputs, of: index, seed: doubles(gradSeed))
            if let m = mismatch(try reference.values(refGrads[slot]), numeric, rtol: 1e-5, atol: 1e-6) {
                XCTFail("\(what): the float64 reference's gradient of input \(index) vs finite differences: \(m)")
            }
        }
        for (label, backend) in TestBackends.all() {
            let xs = try inputs.map(backend.upload)
            let got = try backend.download(try forward(backend, xs))
            XCTAssertEqual(got.shape, expected.shape, "\(what) on \(label)")
            if let m = mismatch(doubles(got), doubles(expected)) { XCTFail("\(what) on \(label): forward: \(m)") }
            let grads = try backward(backend, xs, try backend.upload(gradSeed))
            for (slot, index) in gradientsOf.enumerated() {
                let g = try backend.download(grads[slot])
                XCTAssertEqual(g.shape, inputs[index].shape, "\(what) on \(label): gradient shape of input \(index)")
                if let m = mismatch(doubles(g), try reference.values(refGrads[slot])) {
                    XCTFail("\(what) on \(label): gradient of input \(index): \(m)")
                }
            }
        }
    }

    func testRandomConvolutionGeometries() throws {
        var rng = SeededGenerator(seed: 2026_12_05)
        for trial in 0..<14 {
            let kh = draw(&rng, 1...5), kw = draw(&rng, 1...5)
            let sh = draw(&rng, 1...3), sw = draw(&rng, 1...3), dh = draw(&rng, 1...2), dw = draw(&rng, 1...2)
            let pads = (top: draw(&rng, 0...(kh - 1) * dh), left: draw(&rng, 0...(kw - 1) * dw),
                        bottom: draw(&rng, 0...(kh - 1) * dh), right: draw(&rng, 0...(kw - 1) * dw))
            // Plain, grouped, depthwise, depthwise with a channel multiplier.
            let (c, groups, outChannels): (Int, Int, Int)
            switch trial % 4 {
            case 0: (c, groups, outChannels) = (draw(&rng, 1...4), 1, draw(&rng, 1...5))
            case 1: let g = draw(&rng, 2...3); (c, groups, outChannels) = (g * draw(&rng, 1...2), g, g * draw(&rng, 1...2))
            case 2: let g = draw(&rng, 2...5); (c, groups, outChannels) = (g, g, g)
            default: let g = draw(&rng, 2...4); (c, groups, outChannels) = (g, g, 2 * g)
            }
            let needH = (kh - 1) * dh + 1 - pads.top - pads.bottom, needW = (kw - 1) * dw + 1 - pads.left - pads.right
            let h = max(1, needH) + draw(&rng, 0...5), w = max(1, needW) + draw(&rng, 0...5)
            let n = draw(&rng, 1...2)
            let p = Conv2DParams(strides: (sh, sw), pads: pads, dilations: (dh, dw), groups: groups)
            let x = Tensor.uniform([n, c, h, w], in: -1...1, seed: rng.next()), weight = Tensor.uniform([outChannels, c / groups, kh, kw], in: -1...1, seed: rng.next())
            let what = "conv trial \(trial): x \([n, c, h, w]) w \([outChannels, c / groups, kh, kw]) strides (\(sh), \(sw)) dilations (\(dh), \(dw)) pads \(pads) groups \(groups)"
            try check(what, inputs: [x, weight], gradientsOf: [0], seed: rng.next(), forward: { be, a in
                try be.conv2d(a[0], weight: a[1], bias: nil, params: p, activation: .identity)
            }, backward: { be, a, g in
                [try be.conv2dBackwardInput(g, weight: a[1], params: p, inputShape: a[0].shape)]
            })
        }
    }

    func testRandomPoolingGeometries() throws {
        var rng = SeededGenerator(seed: 1205)
        for trial in 0..<16 {
            let kind: Pool2DParams.Kind = trial % 2 == 0 ? .max : .average
            let kh = draw(&rng, 1...4), kw = draw(&rng, 1...4)
            // ONNX: each pad smaller than the kernel.
            let pads = (top: draw(&rng, 0...kh - 1), left: draw(&rng, 0...kw - 1), bottom: draw(&rng, 0...kh - 1), right: draw(&rng, 0...kw - 1))
            let p = Pool2DParams(kind, kernel: (kh, kw), stride: (draw(&rng, 1...3), draw(&rng, 1...3)), padding: pads,
                                 ceilMode: draw(&rng, 0...1) == 1, countIncludePad: draw(&rng, 0...1) == 1)
            let shape: Shape = [draw(&rng, 1...2), draw(&rng, 1...3), kh + draw(&rng, 0...6), kw + draw(&rng, 0...6)]
            // Distinct values: max pooling's gradient is not differentiable at ties.
            let x = Tensor.uniform(shape, in: -1...1, seed: rng.next())
            let what = "pool trial \(trial): \(kind) x \(shape) kernel (\(kh), \(kw)) strides (\(p.strideH), \(p.strideW)) pads \(pads) ceil \(p.ceilMode) countIncludePad \(p.countIncludePad)"
            try check(what, inputs: [x], gradientsOf: [0], seed: rng.next(), forward: { be, a in try be.pool2d(a[0], params: p) },
                      backward: { be, a, g in [try be.pool2dBackward(g, input: a[0], params: p)] })
        }
    }

    func testRandomBroadcasts() throws {
        var rng = SeededGenerator(seed: 77)
        for trial in 0..<24 {
            let rank = draw(&rng, 1...4)
            let full = (0..<rank).map { _ in draw(&rng, 2...4) }
            // Each operand: every axis kept or set to one, and some leading axes dropped.
            func operand(_ rng: inout SeededGenerator) -> [Int] {
                let dims = full.map { draw(&rng, 0...2) == 0 ? 1 : $0 }
                return Array(dims.dropFirst(draw(&rng, 0...rank - 1)))
            }
            var a = operand(&rng), b = operand(&rng)
            // One operand spans the output on every axis, so its shape is the output's.
            if trial % 2 == 0 { a = full } else { b = full }
            let op = BinaryOp.allCases[trial % BinaryOp.allCases.count]
            let bRange: ClosedRange<Float> = op == .div ? 0.5...2 : -1...1
            let inputs = [Tensor.uniform(Shape(a), in: -1...1, seed: rng.next()), Tensor.uniform(Shape(b), in: bRange, seed: rng.next())]
            let what = "broadcast trial \(trial): \(op) \(a) with \(b)"
            try check(what, inputs: inputs, gradientsOf: [0, 1], seed: rng.next(), forward: { be, x in try be.binary(op, x[0], x[1]) },
                      backward: { be, x, g in
                let (da, db) = try be.binaryBackward(op, gradOutput: g, a: x[0], b: x[1])
                return [da, db]
            })
        }
    }
}
