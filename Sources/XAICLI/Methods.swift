import ArgumentParser
import Foundation
import XAI

struct Methods: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the explanation methods with their knobs and defaults.")

    func run() throws {
        let defaults = MethodConfiguration()
        func value(_ knob: String) -> String {
            switch knob {
            case "steps": return "\(defaults.steps)"
            case "rule": return defaults.rule
            case "noise": return "\(defaults.noise)"
            case "baseline": return defaults.baseline
            case "segmentation": return defaults.segmentation
            case "segments": return "\(defaults.segments)"
            case "window": return "\(defaults.window)"
            case "stride": return "\(defaults.stride)"
            case "masks": return "\(defaults.masks)"
            case "iterations": return "\(defaults.iterations)"
            case "gradcamppScore": return defaults.gradcamppScore
            case "seed": return "\(defaults.seed)"
            default: return ""
            }
        }
        let width = MethodRegistry.names.map(\.count).max() ?? 0
        for spec in MethodRegistry.methods {
            let knobs = spec.knobs.map { k in
                let v = k == "samples" ? (spec.name == "smoothgrad" ? "50" : "1000") : value(k)
                return v.isEmpty ? flag(for: k) : "\(flag(for: k)) \(v)"
            }
            print(spec.name.padding(toLength: width + 2, withPad: " ", startingAt: 0) + (knobs.isEmpty ? "" : knobs.joined(separator: " ") + ": ") + spec.summary)
        }
        print("\nall = every method that applies to the model (cam needs a global-average-pooling + linear head).")
    }
}
