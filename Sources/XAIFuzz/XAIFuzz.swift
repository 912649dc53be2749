import Foundation
import XAIFuzzTargets

// Built two ways. `make fuzz` compiles it with `-sanitize=fuzzer -DFUZZING`: libFuzzer then owns
// `main` and calls `LLVMFuzzerTestOneInput` with mutated inputs for the target named by
// XAI_FUZZ_TARGET. A plain build gives a replayer: `xai-fuzz TARGET FILE...` runs the target on
// each file and prints the outcome (the tests replay the committed corpus the same way).

/// The target from XAI_FUZZ_TARGET, looked up once.
let fuzzTarget: FuzzTarget? = ProcessInfo.processInfo.environment["XAI_FUZZ_TARGET"].flatMap(FuzzTarget.init(rawValue:))

#if FUZZING
/// libFuzzer's entry for a program that keeps its own `main` (SwiftPM links an executable's
/// `main` to this module's, so libFuzzer's own is not used).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// One input, from libFuzzer's own `main` (whichever `main` the linker keeps, this or `fuzzMain`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let target = fuzzTarget else { return 0 }
    let data = bytes.map { Data(bytes: $0, count: size) } ?? Data()
    do {
        _ = try target.run(data)
    } catch {
        // Not an XAIError: a bug. Crash so libFuzzer records the input.
        fatalError("\(target.rawValue): \(type(of: error)): \(error)")
    }
    return 0
}

@_cdecl("XAIFuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    guard fuzzTarget != nil else {
        FileHandle.standardError.write(Data("set XAI_FUZZ_TARGET to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        return 2
    }
    var count = argc
    var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { bytes, size in fuzzOne(bytes, size) }
}
#else
@main
struct Replay {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
            print("usage: xai-fuzz \(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")) FILE...")
            exit(2)
        }
        var failed = false
        for path in arguments.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else { print("\(path): unreadable"); failed = true; continue }
            do {
                print("\(path): \(try target.run(data))")
            } catch {
                print("\(path): not an XAIError: \(error)")
                failed = true
            }
        }
        exit(failed ? 1 : 0)
    }
}
#endif
