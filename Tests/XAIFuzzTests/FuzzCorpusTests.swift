import Foundation
import XCTest
import XAIFuzzTargets

/// Replays the committed fuzz corpus (`Fuzz/Corpus/<target>/`): every input that ever crashed or
/// hung a target, plus a few hundred mutated files per target kept from fuzzing runs, and the
/// seeds. Each must be accepted or refused with an `XAIError`; a trap ends the test process.
final class FuzzCorpusTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz/Corpus")

    func testEveryCorpusInputIsAcceptedOrRefusedWithAnXAIError() throws {
        var counts: [String: (accepted: Int, refused: Int)] = [:]
        var complete: [String: Int] = [:]
        for target in FuzzTarget.allCases {
            let folder = Self.corpus.appendingPathComponent(target.rawValue)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path))?.sorted() ?? []
            XCTAssertFalse(files.isEmpty, "no corpus for \(target.rawValue) in \(folder.path)")
            for name in files {
                let data = try Data(contentsOf: folder.appendingPathComponent(name))
                do {
                    switch try target.run(data) {
                    case .accepted(let whole):
                        counts[target.rawValue, default: (0, 0)].accepted += 1
                        if whole { complete[target.rawValue, default: 0] += 1 }
                    case .refused: counts[target.rawValue, default: (0, 0)].refused += 1
                    }
                } catch {
                    XCTFail("\(target.rawValue)/\(name): not an XAIError: \(type(of: error)): \(error)")
                }
            }
        }
        // Both outcomes on every target: the seeds are valid inputs that must get through the
        // target's caps and checks (a cap that refused everything would replay "cleanly").
        for target in FuzzTarget.allCases {
            let c = counts[target.rawValue, default: (0, 0)]
            XCTAssertGreaterThanOrEqual(c.accepted, 10, "\(target.rawValue): \(c.accepted) accepted")
            XCTAssertGreaterThanOrEqual(complete[target.rawValue, default: 0], 10, "\(target.rawValue): accepted inputs that ran whole, not stopped by a cap")
            XCTAssertGreaterThanOrEqual(c.refused, 1, "\(target.rawValue): \(c.refused) refused")
        }
        print("fuzz corpus replayed: " + counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.accepted) accepted, \($0.value.refused) refused" }
            .joined(separator: "; "))
    }
}
