import XCTest
import XAI
import XAITestSupport

/// Einsum equations the engine does not run are refused at import with the reason, before any
/// tensor is touched (the op table checks the ones it runs against float64).
final class EinsumTests: XCTestCase {
    func testUnsupportedEquationsAreRefusedWithTheReason() {
        let refused: [(String, Int, String)] = [
            ("ij->ii", 1, "bad output term"),
            ("ii->i", 1, "diagonal"),
            ("ij,jk,kl->il", 3, "one or two"),
            ("i1->i", 1, "letters"),
            ("ij->k", 1, "no operand has"),
            ("ij,jk->ik", 1, "operand terms"),
        ]
        for (equation, operands, reason) in refused {
            XCTAssertThrowsError(try EinsumEquation(equation, operands: operands), equation) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(equation): \(error)")
            }
        }
        XCTAssertNoThrow(try EinsumEquation("bij,bjk->bik", operands: 2))
        XCTAssertNoThrow(try EinsumEquation("ij->ji", operands: 1))
    }
}
