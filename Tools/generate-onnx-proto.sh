#!/usr/bin/env bash
# Regenerates Sources/XAIONNX/Generated/onnx.pb.swift from Tools/onnx.proto (copied from the onnx
# Python package, version noted in the generated header). Run by hand when the proto changes; the
# output is committed so that builds never need protoc.
#   needs: protoc (apt-get install protobuf-compiler) and protoc-gen-swift from apple/swift-protobuf
#   (swift build -c release --product protoc-gen-swift in a checkout of the same version as Package.swift)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
plugin="${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift)}"
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Public \
  --proto_path="$here" --swift_out="$here/../Sources/XAIONNX/Generated" "$here/onnx.proto"
