import XCTest
import XAI
import XAITestSupport
@testable import XAIGraph

/// The shape and mask arithmetic exporters emit, against ONNX's semantics (the values below are
/// what onnxruntime and numpy give), with the negative operands and broadcasts that shape code meets.
final class HostArithmeticTests: XCTestCase {
    func t(_ shape: Shape, _ values: [Float]) -> Tensor { Tensor(unchecked: shape, values) }

    func check(_ op: HostArithmetic, _ inputs: [Tensor], _ expected: Tensor, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(try op.evaluate(inputs), expected, "\(op)", file: file, line: line)
    }

    func testElementwiseOpsFollowONNX() throws {
        let a = t([2, 2], [7, -7, 6, -1]), b = t([2], [3, -4])
        // Mod (fmod = 0) takes the divisor's sign, as Python's %; fmod = 1 the dividend's, as C's.
        try check(.mod, [a, b], t([2, 2], [1, -3, 0, -1]))
        try check(.fmod, [a, b], t([2, 2], [1, -3, 0, -1]))
        try check(.fmod, [t([2], [-7, 7]), t([2], [3, -3])], t([2], [-1, 1]))
        try check(.mod, [t([2], [-7, 7]), t([2], [3, -3])], t([2], [2, -2]))
        // Integer division truncates toward zero.
        try check(.integerDivide, [t([4], [7, -7, 117, 5]), t([4], [2, 2, 2, -3])], t([4], [3, -3, 58, -1]))
        try check(.equal, [a, t([1], [6])], t([2, 2], [0, 0, 1, 0]))
        try check(.less, [a, b], t([2, 2], [0, 1, 0, 0]))
        try check(.greater, [a, b], t([2, 2], [1, 0, 1, 1]))
        try check(.not, [t([3], [0, 1, 2])], t([3], [1, 0, 0]))
        try check(.and, [t([3], [0, 1, 1]), t([3], [1, 1, 0])], t([3], [0, 1, 0]))
        try check(.where, [t([2, 1], [1, 0]), t([2], [5, 6]), t([1], [-1])], t([2, 2], [5, 6, -1, -1]))
        try check(.max, [t([2], [1, 5]), t([2], [3, 2]), t([1], [4])], t([2], [4, 5]))
        try check(.neg, [t([2], [1, -2])], t([2], [-1, 2]))
    }

    func testRangeTileAndIndexing() throws {
        try check(.range, [t([], [10]), t([], [1]), t([], [-3])], t([3], [10, 7, 4]))
        try check(.range, [t([], [0]), t([], [5]), t([], [2])], t([3], [0, 2, 4]))
        try check(.range, [t([], [3]), t([], [1]), t([], [1])], t([0], []))
        try check(.tile, [t([1, 2], [1, 2]), t([2], [2, 2])], t([2, 4], [1, 2, 1, 2, 1, 2, 1, 2]))
        let data = t([2, 3], [0, 1, 2, 3, 4, 5])
        try check(.gatherND, [data, t([2, 2], [1, 2, 0, -1])], t([2], [5, 2]))
        try check(.gatherND, [data, t([1, 1], [1])], t([1, 3], [3, 4, 5]))
        try check(.scatterND, [data, t([2, 1], [1, 0]), t([2, 3], [9, 9, 9, 8, 8, 8])], t([2, 3], [8, 8, 8, 9, 9, 9]))
    }

    func testBadOperandsAreNamed() {
        XCTAssertThrowsError(try HostArithmetic.range.evaluate([t([], [0]), t([], [5]), t([], [0])])) { XCTAssertTrue("\($0)".contains("delta"), "\($0)") }
        XCTAssertThrowsError(try HostArithmetic.range.evaluate([t([], [0]), t([], [1e30]), t([], [1e-30])])) { XCTAssertTrue("\($0)".contains("Range"), "\($0)") }
        XCTAssertThrowsError(try HostArithmetic.gatherND.evaluate([t([2], [1, 2]), t([1, 1], [5])])) { XCTAssertTrue("\($0)".contains("out of range"), "\($0)") }
        XCTAssertThrowsError(try HostArithmetic.tile.evaluate([t([2], [1, 2]), t([1], [Float(1 << 62)])])) { XCTAssertTrue("\($0)".contains("Tile"), "\($0)") }
        XCTAssertThrowsError(try HostArithmetic.equal.evaluate([t([2], [1, 2]), t([3], [1, 2, 3])])) { XCTAssertTrue("\($0)".contains("Equal"), "\($0)") }
        XCTAssertThrowsError(try HostArithmetic.where.evaluate([t([1], [1])])) { XCTAssertTrue("\($0)".contains("Where"), "\($0)") }
    }

    /// Slice of constants: a zero step is refused (a stride of zero would never end), negative
    /// steps walk backwards as numpy's do.
    func testSlicesOfConstantsRefuseAZeroStep() throws {
        let x = t([6], [0, 1, 2, 3, 4, 5])
        XCTAssertThrowsError(try stridedSlice(x, starts: [0], ends: [6], axes: [0], steps: [0])) { XCTAssertTrue("\($0)".contains("step"), "\($0)") }
        XCTAssertEqual(try stridedSlice(x, starts: [5], ends: [0], axes: [0], steps: [-2]), t([3], [5, 3, 1]))
        XCTAssertEqual(try stridedSlice(x, starts: [1], ends: [100], axes: [0], steps: [2]), t([3], [1, 3, 5]))
    }

    /// Resize of constants: sizes past 2^24 per axis are refused before anything is allocated.
    func testResizeRefusesSizesPastItsLimit() throws {
        let resize = ResizeMode(interpolation: .nearest, coordinates: .asymmetric, rounding: .floor, cubicA: -0.75, excludeOutside: false, axes: [1])
        let x = t([1, 2], [1, 2])
        XCTAssertEqual(try resize.apply(x, scales: nil, sizes: [4]).shape, [1, 4])
        XCTAssertThrowsError(try resize.apply(x, scales: nil, sizes: [(1 << 24) + 1])) { XCTAssertTrue("\($0)".contains("sizes"), "\($0)") }
    }
}
