import ArgumentParser
import Foundation
import XAI

@main
struct XAICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xai",
        abstract: "Explain the predictions of image classifiers on OpenCL GPUs and OpenBLAS CPUs.",
        version: XAIVersion.string,
        subcommands: [Demo.self, Explain.self, Evaluate.self, Predict.self, Methods.self, Inspect.self, Devices.self]
    )
}

struct Devices: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the CPU and every OpenCL device (GPUs first), with the index that --device gpu:N takes.")

    func run() throws {
        let host = HostInfo.current()
        print("cpu      \(host.cpuModel)")
        print("         \(host.logicalCores) logical cores, \(gib(host.memoryBytes)) memory, \(host.blasConfig)")
        print("         convolutions: " + (host.oneDNN ?? "im2col + OpenBLAS (oneDNN could not be opened)"))
        do {
            let devices = try OpenCLRuntime.devices()
            if devices.isEmpty { print("gpu      no OpenCL devices found") }
            for d in devices {
                let kind = d.isGPU ? "GPU" : "not a GPU (OpenCL on a \(d.name.contains("pthread") || d.platformName.contains("Portable") ? "CPU, e.g. PoCL" : "non-GPU device"))"
                print("gpu:\(d.index)    \(d.name) [\(kind)]")
                print("         vendor \(d.vendor), platform \(d.platformName), \(d.deviceVersion), driver \(d.driverVersion)")
                print("         \(d.computeUnits) compute units at \(d.clockMHz) MHz, \(gib(d.globalMemoryBytes)) global memory, max allocation \(gib(d.maxAllocationBytes)), \(d.localMemoryBytes / 1024) KiB local memory, work-groups up to \(d.maxWorkGroupSize)")
                if let (gemm, source) = try? GEMMTuningCache.choose(for: d, requested: nil) {
                    print("         GEMM: \(gemm) (\(source))"
                        + ((try? TileChoice.initial(isGPU: d.isGPU, computeUnits: d.computeUnits)).map { gemm.engine == .tiled ? "; \($0)" : "" }
                            ?? "; XAI_SMALL_TILES is not on or off"))
                    print("         convolutions: " + ((try? ConvolutionLowering.summary(for: d, gemm: gemm))
                        ?? "XAI_CONV_LOWERING is not im2col or implicit"))
                } else {
                    print("         GEMM: XAI_GEMM_KERNEL is not a GEMM configuration (see xai-bench tune --help)")
                }
                print("         tensor cores: " + TensorCores.summary(for: d))
                print("         noise: " + (d.correctlyRoundedDivideSqrt ? "drawn on the device"
                    : "drawn on the host (no correctly rounded division and square root on this device)"))
                print("         kernel binaries: " + ProgramBinaryCache.summary(for: d))
            }
        } catch {
            print("gpu      unavailable: \(error)")
        }
    }
}

func gib(_ bytes: Int) -> String { String(format: "%.1f GiB", Double(bytes) / Double(1 << 30)) }
