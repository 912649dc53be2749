// The one module frontends import: everything below is re-exported.
@_exported import XAICore
@_exported import XAIGraph
@_exported import XAIONNX
@_exported import XAIMethods
@_exported import XAIMetrics
@_exported import XAIImage
@_exported import struct XAIOpenCL.OpenCLDeviceInfo
@_exported import class XAIOpenCL.OpenCLBackend
@_exported import enum XAIOpenCL.OpenCLRuntime
@_exported import struct XAIOpenCL.TensorCores
@_exported import enum XAIOpenCL.GEMMArithmetic
@_exported import struct XAIOpenCL.GEMMConfig
@_exported import enum XAIOpenCL.GEMMDeviceTable
@_exported import enum XAIOpenCL.GEMMTuningCache
@_exported import enum XAIOpenCL.GEMMTuner
@_exported import enum XAIOpenCL.ConvolutionLowering
@_exported import struct XAIOpenCL.ConvolutionLoweringTable
@_exported import enum XAIOpenCL.ConvolutionLoweringTuner
@_exported import enum XAIOpenCL.WinogradTile
@_exported import enum XAIOpenCL.TileChoice
@_exported import struct XAIOpenCL.ProgramBinaryCache
@_exported import class XAICPU.CPUBackend
@_exported import struct XAICPU.HostInfo
@_exported import struct XAICPU.ConvolutionTuningTable
@_exported import enum XAICPU.ConvolutionTuner
@_exported import enum XAICPU.ConvolutionAlgorithm
