#include "agent/node/api_request.h"

#include <algorithm>

namespace gapsync::agent {

Result<v1::ApiRequest> DecodeApiRequest(std::string_view body) {
  v1::ApiRequest req;
  if (!req.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
    return MakeError(Errc::kInvalidArgument, "malformed request");
  }
  switch (req.kind_case()) {
    case v1::ApiRequest::kStatus:
      return req;
    case v1::ApiRequest::kIngest: {
      const std::string& dir = req.ingest().bundle_dir();
      if (dir.empty() || dir.front() != '/' || dir.size() > 4096 || dir.find('\0') != std::string::npos) {
        return MakeError(Errc::kInvalidArgument, "ingest: bundle_dir must be an absolute path (got \"" +
                                                     dir.substr(0, std::min<size_t>(dir.find('\0'), 80)) + "\")");
      }
      return req;
    }
    default:
      return MakeError(Errc::kInvalidArgument, "unknown request");
  }
}

}  // namespace gapsync::agent
