/// Reading the deployment payload's settings for the providers, once per
/// job.
#pragma once

#include "messages/provider_job.hpp"

namespace heaven {

/// Reads `req.payload_json`'s `config` (and `aws`, `rollback_release`) into the
/// typed settings every provider reads, for `req.environment`. Never fails: a
/// payload that is no JSON object, or a config that is none, reads as an empty
/// config.
payload_config read_payload_config(const deployment_request& req);

} // namespace heaven
