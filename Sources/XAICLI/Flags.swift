import ArgumentParser
import Foundation
import XAI

/// The flag a library parameter is set with, for error messages: the library names knobs
/// (`steps`, `gradcamppScore`), the command line spells them (`--steps`, `--gradcampp-score`).
/// Parameters no flag sets keep their library name.
func flag(for parameter: String) -> String {
    // Preprocessing names its mean and std; the command line sets both with --preset.
    let aliases = ["mean": "preset", "std": "preset"]
    let name = aliases[parameter] ?? parameter
    let flags = Set(MethodConfiguration.knobNames + MetricConfiguration.knobNames
                    + ["device", "target", "preset", "resize", "shard", "colormap", "sign", "alpha", "percentile", "save", "method", "out", "top", "folder",
                       "metrics", "groundTruth", "imageBatch", "precision"])
    guard flags.contains(name) else { return parameter }
    var kebab = ""
    for ch in name {
        if ch.isUppercase { kebab += "-" + ch.lowercased() } else { kebab.append(ch) }
    }
    return "--" + kebab
}

/// An engine error as the command line reports it: parameters spelled as flags.
struct CommandLineError: Error, CustomStringConvertible {
    let error: XAIError
    var description: String { error.rendered(parameter: flag(for:)) }
}

/// Runs a command's body, turning engine errors into command-line errors.
func reportingFlags<T>(_ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as XAIError { throw CommandLineError(error: e) }
}

/// The message of any error, engine errors with flag spellings.
func describe(_ error: Error) -> String {
    if let e = error as? XAIError { return e.rendered(parameter: flag(for:)) }
    return "\(error)"
}

/// `--target`: `top1` (each image's predicted class) or a class index.
func parseTarget(_ text: String) throws -> Target {
    if text == "top1" { return .predicted }
    guard let i = Int(text) else { throw XAIError.invalidArgument(parameter: "target", value: text, reason: "neither top1 nor a class index") }
    return .index(i)
}

/// `--precision`: the choices, for the commands' help.
let precisionHelp = "exact (or fp32: IEEE float32 everywhere, the same bits every run), fast (as --fast), tf32 (every GEMM of every pass on TF32 tensor cores, operands rounded to 11 significant bits: PyTorch's default for cuDNN convolutions) or 3xtf32 (tensor cores with three TF32 products per pair: fp32-class accuracy). tf32 and 3xtf32 need an NVIDIA GPU whose OpenCL takes inline PTX mma.sync (sm_80 and later); elsewhere GEMMs run fp32 and `xai devices` and the provenance say so."

/// The precision `--precision` and `--fast` ask for together.
/// - Throws: ``XAIError/invalidArgument(parameter:value:reason:)`` for an unknown name, or for
///   `--fast` beside a precision other than fast.
func resolvePrecision(_ text: String?, fast: Bool) throws -> Precision {
    guard let text else { return fast ? .fast : .exact }
    let p = try Precision(parsing: text)
    if fast && p != .fast {
        throw XAIError.invalidArgument(parameter: "precision", value: text, reason: "--fast is --precision fast; give one of them")
    }
    return p
}

/// `--fast`: what it trades, for the commands' help.
let fastHelp = "Let forward-only passes (the perturbation batches of occlusion, LIME, KernelSHAP, RISE) use Winograd convolutions: oneDNN's where the CPU offers them (AVX-512; about 15 % faster there, maps within about 3e-3 of the exact ones), F(2x2, 3x3) or F(4x4, 3x3) per layer for 3x3 stride-1 layers on OpenCL devices. Gradient passes stay exact. Default: exact (the same bits every run)."
