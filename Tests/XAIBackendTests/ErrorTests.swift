import XCTest
import XAI
import XAITestSupport

/// Bad shapes and arguments throw errors that name the op and shapes; nothing crashes.
final class ErrorTests: XCTestCase {
    func testShapeErrorsOnEveryBackend() throws {
        for (label, be) in [("reference", ReferenceBackend() as any Backend)] + TestBackends.all() {
            let x = try be.upload(Tensor.uniform([1, 3, 8, 8], seed: 1))
            let wrongWeight = try be.upload(Tensor.uniform([4, 2, 3, 3], seed: 2))
            XCTAssertThrowsError(try be.conv2d(x, weight: wrongWeight, bias: nil, params: Conv2DParams(), activation: .identity), label) { error in
                guard case XAIError.shapeMismatch(let op, _, let got) = error else { return XCTFail("\(label): \(error)") }
                XCTAssertEqual(op, "conv2d")
                XCTAssertEqual(got, [[1, 3, 8, 8], [4, 2, 3, 3]])
                XCTAssertTrue("\(error)".contains("[1x3x8x8]") && "\(error)".contains("[4x2x3x3]"), "\(error)")
                XCTAssertEqual((error as? XAIError)?.code, .invalidArgument)
            }
            let a = try be.upload(Tensor.uniform([2, 3], seed: 3)), b = try be.upload(Tensor.uniform([4, 5], seed: 4))
            XCTAssertThrowsError(try be.gemm(a, b, transposeA: false, transposeB: false, alpha: 1, bias: nil, activation: .identity), label)
            XCTAssertThrowsError(try be.binary(.add, a, b), label)
            XCTAssertThrowsError(try be.pool2d(x, params: Pool2DParams(.max, kernel: (9, 9))), label)
            XCTAssertThrowsError(try be.reduce(.sum, x, axes: [4]), label)
            XCTAssertThrowsError(try be.softmax(x, axis: -5, log: false), label)
            XCTAssertThrowsError(try be.unaryBackward(.silu, gradOutput: x, value: x, valueIsOutput: true), label)
            let labels = try be.upload(Tensor(shape: [8, 8], repeating: 40))
            XCTAssertThrowsError(try be.masks(.segments(labels: labels, keep: [1, 2, 3], wordsPerSample: 2), height: 8, width: 8), label)
        }
    }

    func testArraysFromAnotherBackendAreRefused() throws {
        let cpu = CPUBackend(), reference = ReferenceBackend()
        let x = try reference.upload(Tensor.uniform([2, 2], seed: 5))
        XCTAssertThrowsError(try cpu.unary(.relu, x)) { error in
            guard case XAIError.wrongDevice = error else { return XCTFail("\(error)") }
        }
    }

    func testMissingOpenCLDeviceIndexIsReported() {
        XCTAssertThrowsError(try OpenCLBackend(index: 999)) { error in
            guard case XAIError.deviceUnavailable(let device, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(device, "gpu:999")
        }
    }
}
