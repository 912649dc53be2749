import XCTest
@testable import XAICore

/// The plans' checks of what kernels will index with: a label or rank outside its range is refused
/// before any kernel runs, naming it.
final class PlanValidationTests: XCTestCase {
    func testLabelRangeIsTheFiniteMinimumAndMaximum() {
        let r = LabelRange(of: [3, -1, 7, 2] as [Float])
        XCTAssertEqual(r.lo, -1)
        XCTAssertEqual(r.hi, 7)
        XCTAssertTrue(r.finite)
        let withNaN = LabelRange(of: [4, .nan, 9, 5] as [Float])
        XCTAssertFalse(withNaN.finite)
        XCTAssertEqual(withNaN.lo, 4)
        XCTAssertEqual(withNaN.hi, 9)
    }

    func testRankMapsMustHoldRanksBelowThePixelCount() throws {
        let be = ReferenceBackend()
        func plan(_ ranks: [Float]) throws -> MaskPlan {
            let a = try be.upload(try Tensor(shape: [2, 2], scalars: ranks))
            return try MaskPlan(.ranks(ranks: a, counts: [0, 2, 4], firstKept: false), height: 2, width: 2, labelRange: LabelRange(of: ranks))
        }
        XCTAssertNoThrow(try plan([0, 3, 1, 2]))
        for (ranks, named) in [([0, 4, 1, 2] as [Float], "rank 4"), ([0, -1, 1, 2], "rank -1"), ([0, .nan, 1, 2], "non-finite")] {
            XCTAssertThrowsError(try plan(ranks), "\(ranks)") { XCTAssertTrue("\($0)".contains(named) && "\($0)".contains("ranks"), "\($0)") }
        }
        let a = try be.upload(try Tensor(shape: [2, 2], scalars: [0, 1, 2, 3]))
        XCTAssertThrowsError(try MaskPlan(.ranks(ranks: a, counts: [0, 5], firstKept: false), height: 2, width: 2,
                                          labelRange: LabelRange(of: [0, 1, 2, 3] as [Float]))) { XCTAssertTrue("\($0)".contains("counts"), "\($0)") }
    }

    func testSegmentLabelsMustFitTheKeepWords() throws {
        let be = ReferenceBackend()
        func plan(_ labels: [Float], words: Int) throws -> MaskPlan {
            let a = try be.upload(try Tensor(shape: [2, 2], scalars: labels))
            return try MaskPlan(.segments(labels: a, keep: [UInt32](repeating: 0, count: 3 * words), wordsPerSample: words), height: 2, width: 2,
                                labelRange: LabelRange(of: labels))
        }
        XCTAssertNoThrow(try plan([0, 31, 5, 2], words: 1))
        XCTAssertNoThrow(try plan([0, 63, 5, 2], words: 2))
        XCTAssertThrowsError(try plan([0, 32, 5, 2], words: 1)) { XCTAssertTrue("\($0)".contains("label 32"), "\($0)") }
        XCTAssertThrowsError(try plan([0, -2, 5, 2], words: 1)) { XCTAssertTrue("\($0)".contains("label -2"), "\($0)") }
    }
}

/// Sizes in error messages: bytes below a MiB, whole MiB rounded to the nearest below a GiB, GiB
/// with one decimal.
final class ErrorTextTests: XCTestCase {
    func testSizesAreRoundedToTheNearestUnit() {
        XCTAssertEqual(XAIError.bytes(1000), "1000 bytes")
        XCTAssertEqual(XAIError.bytes((3 << 20) + 600_000), "4 MiB")
        XCTAssertEqual(XAIError.bytes((3 << 20) + 400_000), "3 MiB")
        XCTAssertEqual(XAIError.bytes(5 << 30 + (1 << 29)), "5.5 GiB")
        let error = XAIError.tooLarge(what: "a batch", bytes: (7 << 20) + (1 << 19), limit: 1 << 20)
        XCTAssertEqual("\(error)", "a batch needs 8 MiB, more than the 1 MiB allowed")
    }
}
