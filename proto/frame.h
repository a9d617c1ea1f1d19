// Message framing shared by the agent's local API and the control plane: a 4-byte big-endian
// length followed by the protobuf bytes.
#pragma once

#include <google/protobuf/message_lite.h>

#include <cstdint>
#include <string>

namespace gapsync {

inline constexpr uint32_t kMaxFrame = 1 << 20;  // larger frames are refused unread

std::string EncodeFrame(const google::protobuf::MessageLite& message);
uint32_t DecodeFrameLength(const unsigned char header[4]);

}  // namespace gapsync
