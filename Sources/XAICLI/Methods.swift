import ArgumentParser
import Foundation
import XAI

struct Methods: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the explanation methods with their knobs and defaults.")

    @Flag(help: "Every method and knob with types, defaults and ranges, as JSON (what the C ABI and Python read).") var json = false

    func run() throws {
        if json {
            FileHandle.standardOutput.write(MethodRegistry.json() + Data("\n".utf8))
            return
        }
        let width = MethodRegistry.names.map(\.count).max() ?? 0
        for spec in MethodRegistry.methods {
            let knobs = spec.knobs.map { k in spec.defaultValue(k).map { "\(flag(for: k)) \($0)" } ?? flag(for: k) }
            print(spec.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + (knobs.isEmpty ? "" : knobs.joined(separator: " ") + ": ") + spec.summary)
        }
        print("\nall = every method that applies to the model (cam needs a global-average-pooling + linear head).")
    }
}
