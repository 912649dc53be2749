import ArgumentParser
import Foundation
import XAI

@main
struct XAIBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xai-bench",
        abstract: "Reproducible benchmarks of the xai engine against its floor and its peers.",
        subcommands: [MethodsBenchmark.self, OpsBenchmark.self, ModelsBenchmark.self, MetricsBenchmark.self, TuneBenchmark.self, PrecisionBenchmark.self],
        defaultSubcommand: MethodsBenchmark.self
    )
}
