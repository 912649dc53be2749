import XCTest
@testable import XAICore

final class ShapeTests: XCTestCase {
    func testStridesAndCount() {
        let s: Shape = [2, 3, 4, 5]
        XCTAssertEqual(s.count, 120)
        XCTAssertEqual(s.strides, [60, 20, 5, 1])
        XCTAssertEqual(s.description, "[2x3x4x5]")
    }

    func testBroadcast() {
        XCTAssertEqual(Shape.broadcast([2, 1, 4], [3, 1]), [2, 3, 4])
        XCTAssertNil(Shape.broadcast([2, 3], [4, 3, 2]))
        XCTAssertEqual(Shape([3, 1]).broadcastStrides(to: [2, 3, 4]), [0, 1, 0])
    }

    func testConvOutputShapes() throws {
        // ResNet stem: 224 -> 112 with 7x7 stride 2 pad 3.
        XCTAssertEqual(try Conv2DParams(stride: 2, padding: 3).outputShape(input: [1, 3, 224, 224], weight: [64, 3, 7, 7]), [1, 64, 112, 112])
        // Asymmetric padding and dilation.
        let p = Conv2DParams(strides: (2, 1), pads: (1, 0, 2, 1), dilations: (2, 1))
        XCTAssertEqual(try p.outputShape(input: [1, 2, 10, 9], weight: [3, 2, 3, 2]), [1, 3, 5, 9])
        XCTAssertThrowsError(try Conv2DParams(groups: 2).outputShape(input: [1, 3, 8, 8], weight: [4, 1, 3, 3]))
    }

    func testPoolCeilModeMatchesPyTorch() throws {
        // torch.nn.MaxPool2d(3, 2, ceil_mode=True) on 55x55 (SqueezeNet) gives 27x27; on 10x9 gives 5x4.
        XCTAssertEqual(try Pool2DParams(.max, kernel: (3, 3), stride: (2, 2), ceilMode: true).outputShape(input: [1, 1, 55, 55]), [1, 1, 27, 27])
        XCTAssertEqual(try Pool2DParams(.max, kernel: (3, 3), stride: (2, 2), ceilMode: true).outputShape(input: [1, 1, 10, 9]), [1, 1, 5, 4])
        // With padding the last window may not start in the right padding: 5x5, k2 s2 p1 ceil -> 3x3.
        XCTAssertEqual(try Pool2DParams(.max, kernel: (2, 2), stride: (2, 2), padding: (1, 1, 1, 1), ceilMode: true).outputShape(input: [1, 1, 5, 5]), [1, 1, 3, 3])
        XCTAssertEqual(try Pool2DParams(.max, kernel: (3, 3), stride: (2, 2), padding: (1, 1, 1, 1)).outputShape(input: [1, 1, 112, 112]), [1, 1, 56, 56])
    }

    func testTensorChecksShape() {
        XCTAssertThrowsError(try Tensor(shape: [2, 3], scalars: [1, 2, 3]))
        XCTAssertThrowsError(try Tensor(shape: [2, 3], repeating: 1).reshaped([4, 2]))
    }

    func testSeededRandomIsReproducibleAndNotConstant() {
        let a = Tensor.uniform([100], seed: 42), b = Tensor.uniform([100], seed: 42), c = Tensor.uniform([100], seed: 43)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a, c)
        XCTAssertGreaterThan(Set(a.scalars).count, 90)
        let g = Tensor.gaussian([10_000], seed: 1)
        let mean = g.scalars.reduce(0, +) / 10_000
        XCTAssertLessThan(abs(mean), 0.05)
    }

    /// Long draws run in pieces on every core: the values are still one generator's, in order
    /// (the fixtures re-make these streams in Python).
    func testLongSeededDrawsAreOneStream() {
        let count = (1 << 16) * 3 + 123
        var rng = SeededGenerator(seed: 9)
        let gaussian = (0..<count).map { _ in 0.5 + 2 * rng.nextGaussian() }
        XCTAssertEqual(Tensor.gaussian([count], mean: 0.5, std: 2, seed: 9).scalars, gaussian)
        rng = SeededGenerator(seed: 11)
        let uniform = (0..<count).map { _ in -3 + 5 * rng.nextUnitFloat() }
        XCTAssertEqual(Tensor.uniform([count], in: -3...2, seed: 11).scalars, uniform)
        var skipped = SeededGenerator(seed: 5, skipping: 1000), walked = SeededGenerator(seed: 5)
        for _ in 0..<1000 { _ = walked.next() }
        XCTAssertEqual(skipped.next(), walked.next())
    }

    func testDeviceParsing() throws {
        XCTAssertEqual(try Device(parsing: "cpu"), .cpu)
        XCTAssertEqual(try Device(parsing: "gpu"), .gpu(0))
        XCTAssertEqual(try Device(parsing: "gpu:2"), .gpu(2))
        XCTAssertThrowsError(try Device(parsing: "tpu"))
        XCTAssertThrowsError(try Device(parsing: "gpu:-1"))
    }

    func testTransposedHW() {
        var t = Tensor(shape: [1, 1, 2, 3])
        t[0, 0, 0, 2] = 7
        let u = t.transposedHW()
        XCTAssertEqual(u.shape, [1, 1, 3, 2])
        XCTAssertEqual(u[0, 0, 2, 0], 7)
    }

    /// NaN and infinities are found at every position (the vectorised body and the tail), and
    /// huge finite values are not counted.
    func testNonFiniteCountFindsEveryPosition() {
        var generator = SystemRandomNumberGenerator()
        for n in [1, 5, 15, 16, 17, 31, 33, 47, 100] {
            let values = (0..<n).map { _ in Float.random(in: -1e38...1e38, using: &generator) }
            XCTAssertEqual(Tensor(unchecked: Shape([n]), values).nonFiniteCount, 0, "n \(n)")
            for position in 0..<n {
                for bad in [Float.nan, .infinity, -.infinity] {
                    var v = values
                    v[position] = bad
                    XCTAssertEqual(Tensor(unchecked: Shape([n]), v).nonFiniteCount, 1, "n \(n), \(bad) at \(position)")
                }
            }
            var two = values
            two[0] = .nan
            two[n - 1] = .infinity
            XCTAssertEqual(Tensor(unchecked: Shape([n]), two).nonFiniteCount, n == 1 ? 1 : 2)
        }
        XCTAssertEqual(Tensor(unchecked: Shape([0]), []).nonFiniteCount, 0)
    }
}
