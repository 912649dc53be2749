import XCTest
import XAI
import XAITestSupport

/// Runs the op table on every backend against the float64 reference, and every backward against
/// central finite differences of the float64 reference.
final class OpCaseTests: XCTestCase {
    let reference = ReferenceBackend()

    func referenceOutput(_ c: OpCase) throws -> Tensor {
        try reference.download(try c.forward(reference, try c.inputs.map(reference.upload)))
    }

    func testForwardMatchesReferenceOnEveryBackend() throws {
        for c in opCases {
            let expected = try referenceOutput(c)
            for (label, backend) in TestBackends.all() {
                let got = try backend.download(try c.forward(backend, try c.inputs.map(backend.upload)))
                XCTAssertEqual(got.shape, expected.shape, "\(c.name) on \(label)")
                if let m = mismatch(doubles(got), doubles(expected)) { XCTFail("\(c.name) on \(label): \(m)") }
            }
        }
    }

    /// The comparison must be order-sensitive: the right values with H and W swapped must fail.
    func testTransposedSpatialLayoutIsDetected() throws {
        var checked = 0
        for c in opCases {
            let expected = try referenceOutput(c)
            guard expected.shape.rank == 4, expected.shape[2] != expected.shape[3], expected.shape[2] > 1, expected.shape[3] > 1 else { continue }
            let swapped = try expected.transposedHW().reshaped(expected.shape)
            XCTAssertNotNil(mismatch(doubles(swapped), doubles(expected)), "\(c.name): transposed output passed the comparison")
            checked += 1
        }
        XCTAssertGreaterThan(checked, 20)
    }

    func testBackwardMatchesFiniteDifferencesOnEveryBackend() throws {
        var seed: UInt64 = 9000
        for c in opCases where c.backward != nil {
            seed += 1
            let refInputs = try c.inputs.map(reference.upload)
            let out = try c.forward(reference, refInputs)
            let gradSeed = Tensor.uniform(out.shape, in: -1...1, seed: seed)
            let seedValues = doubles(gradSeed)
            // Loss L = sum(seed * forward(inputs)) in float64; dL/dx by central differences.
            func loss(_ inputs: [DeviceArray]) throws -> Double {
                let y = try reference.values(try c.forward(reference, inputs))
                return zip(y, seedValues).reduce(0) { $0 + $1.0 * $1.1 }
            }
            let analytic = try c.backward!(reference, refInputs, try reference.upload(gradSeed))
            for (slot, inputIndex) in c.gradientInputs.enumerated() {
                var values = try reference.values(refInputs[inputIndex])
                var numeric = [Double](repeating: 0, count: values.count)
                let h = 1e-6
                for i in 0..<values.count {
                    let original = values[i]
                    var perturbed = refInputs
                    values[i] = original + h
                    perturbed[inputIndex] = reference.array(refInputs[inputIndex].shape, values)
                    let plus = try loss(perturbed)
                    values[i] = original - h
                    perturbed[inputIndex] = reference.array(refInputs[inputIndex].shape, values)
                    let minus = try loss(perturbed)
                    values[i] = original
                    numeric[i] = (plus - minus) / (2 * h)
                }
                let refGrad = try reference.values(analytic[slot])
                if let m = mismatch(refGrad, numeric, rtol: 1e-5, atol: 1e-6) {
                    XCTFail("\(c.name): reference backward vs finite differences, input \(inputIndex): \(m)")
                }
                for (label, backend) in TestBackends.all() {
                    let inputs = try c.inputs.map(backend.upload)
                    let grads = try c.backward!(backend, inputs, try backend.upload(gradSeed))
                    let got = try backend.download(grads[slot])
                    XCTAssertEqual(got.shape, analytic[slot].shape, "\(c.name) gradient shape on \(label)")
                    if let m = mismatch(doubles(got), numeric) {
                        XCTFail("\(c.name) on \(label): backward vs finite differences, input \(inputIndex): \(m)")
                    }
                }
            }
        }
    }

    /// CPU and OpenCL agree with each other directly, not only through the reference.
    func testCPUAndOpenCLAgree() throws {
        let cl = try TestBackends.requireOpenCL()
        let cpu = CPUBackend()
        for c in opCases {
            let a = try cpu.download(try c.forward(cpu, try c.inputs.map(cpu.upload)))
            let b = try cl.download(try c.forward(cl, try c.inputs.map(cl.upload)))
            if let m = mismatch(doubles(b), doubles(a)) { XCTFail("\(c.name): OpenCL vs CPU: \(m)") }
        }
    }
}

/// Ties (as after a ReLU) are where max-pooling and reduce-max backward rules differ between
/// libraries: max pooling credits the first maximum of each window, reduce-max shares equally.
final class TieBreakingTests: XCTestCase {
    func testMaxPoolAndReduceMaxBackwardWithTies() throws {
        let reference = ReferenceBackend()
        // Values in {0, 1, 2}: plenty of ties in every window.
        let x = try Tensor(shape: [2, 3, 7, 6], scalars: Tensor.uniform([2, 3, 7, 6], in: 0...2.99, seed: 5).scalars.map { $0.rounded(.down) })
        for pool in [Pool2DParams(.max, kernel: (3, 3), stride: (2, 2), padding: (1, 1, 1, 1), ceilMode: true),
                     Pool2DParams(.max, kernel: (3, 3), stride: (1, 1), padding: (1, 1, 1, 1), ceilMode: true)] {
            let gy = Tensor.uniform(try pool.outputShape(input: x.shape), seed: 6)
            let expected = try reference.download(try reference.pool2dBackward(try reference.upload(gy), input: try reference.upload(x), params: pool))
            for (label, be) in TestBackends.all() {
                let got = try be.download(try be.pool2dBackward(try be.upload(gy), input: try be.upload(x), params: pool))
                if let m = mismatch(doubles(got), doubles(expected)) { XCTFail("max pool \(pool) backward with ties on \(label): \(m)") }
            }
        }
        let gr = Tensor.uniform([2, 1, 7, 6], seed: 7)
        let expectedReduce = try reference.download(try reference.reduceBackward(.max, gradOutput: try reference.upload(gr), input: try reference.upload(x), axes: [1]))
        for (label, be) in TestBackends.all() {
            let gotReduce = try be.download(try be.reduceBackward(.max, gradOutput: try be.upload(gr), input: try be.upload(x), axes: [1]))
            if let m = mismatch(doubles(gotReduce), doubles(expectedReduce)) { XCTFail("reduce max backward with ties on \(label): \(m)") }
        }
    }
}

/// Global average pooling against its definition computed here in float64 (the op-case table
/// compares backends with the reference, which share the composite): every axis after the
/// channels, of an image `[N, C, H, W]` and of tokens `[N, C, T]`.
final class GlobalPoolingTests: XCTestCase {
    func testGlobalAveragePoolAveragesEveryAxisAfterTheChannels() throws {
        for shape in [Shape([2, 3, 4, 5]), Shape([2, 3, 7])] {
            let x = Tensor.uniform(shape, in: -1...1, seed: 41)
            let plane = shape.dims.dropFirst(2).reduce(1, *)
            let expected = (0..<(shape[0] * shape[1])).map { i in x.scalars[(i * plane)..<((i + 1) * plane)].reduce(0.0) { $0 + Double($1) } / Double(plane) }
            for (label, backend) in TestBackends.all() {
                let y = try backend.download(try backend.globalAveragePool(try backend.upload(x)))
                XCTAssertEqual(y.shape, Shape([shape[0], shape[1]] + [Int](repeating: 1, count: shape.rank - 2)), label)
                if let m = mismatch(doubles(y), expected, rtol: 1e-6, atol: 1e-7) { XCTFail("\(shape) on \(label): \(m)") }
            }
        }
    }
}

