// AWS Signature Version 4: AWS's published test suite, the request signer,
// and a cross-check against botocore's signer.
#include "base/sigv4.hpp"
#include "base/text.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace heaven;
namespace sig = heaven::sigv4;
using namespace std::chrono;

namespace {

// -- AWS's test suite (aws-sig-v4-test-suite) --------------------------------

constexpr auto suite_akid = "AKIDEXAMPLE";
constexpr auto suite_secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr auto suite_date = "20150830T123600Z";
constexpr auto suite_region = "us-east-1";
constexpr auto suite_service = "service";

/// The session token of the post-sts-token cases.
const std::string suite_token
  = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWL"
    "WsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQr"
    "mGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HF"
    "vlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scq"
    "Kmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

/// One case of the suite: the request of its .req (path and query as written
/// there, i.e. not %-encoded; headers in order; body) and the expected .creq,
/// .sts and .authz.
struct suite_case {
  std::string name;
  std::string method;
  std::string path;
  std::string query;
  string_pairs headers;
  std::string body;
  std::string creq;
  /// "" when the suite publishes no string to sign for this very request.
  std::string sts;
  /// "" like `sts`.
  std::string authz;
};

const std::vector<suite_case>& suite() {
  static const std::vector<suite_case> cases = {
    {"get-header-key-duplicate",
     "GET",
     "/",
     "",
     {{"Host", "example.amazonaws.com"},
      {"My-Header1", "value2"},
      {"My-Header1", "value2"},
      {"My-Header1", "value1"},
      {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/

host:example.amazonaws.com
my-header1:value2,value2,value1
x-amz-date:20150830T123600Z

host;my-header1;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature="
     "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
    {"get-header-value-multiline",
     "GET",
     "/",
     "",
     {{"Host", "example.amazonaws.com"},
      {"My-Header1", "value1\n  value2\n     value3"},
      {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/

host:example.amazonaws.com
my-header1:value1,value2,value3
x-amz-date:20150830T123600Z

host;my-header1;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
b7b6cbfd8a0430b78891e986784da2630c8a135a8595cec25b26ea94f926ee55)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature="
     "ba17b383a53190154eb5fa66a1b836cc297cc0a3d70a5d00705980573d8ff790"},
    {"get-header-value-order",
     "GET",
     "/",
     "",
     {{"Host", "example.amazonaws.com"},
      {"My-Header1", "value4"},
      {"My-Header1", "value1"},
      {"My-Header1", "value3"},
      {"My-Header1", "value2"},
      {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/

host:example.amazonaws.com
my-header1:value4,value1,value3,value2
x-amz-date:20150830T123600Z

host;my-header1;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature="
     "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
    {"get-header-value-trim",
     "GET",
     "/",
     "",
     {{"Host", "example.amazonaws.com"},
      {"My-Header1", " value1"},
      {"My-Header2", " \"a   b   c\""},
      {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/

host:example.amazonaws.com
my-header1:value1
my-header2:"a b c"
x-amz-date:20150830T123600Z

host;my-header1;my-header2;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;my-header1;my-header2;x-amz-date, "
     "Signature="
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
    {"get-unreserved",
     "GET",
     "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
    {"get-utf8",
     "GET",
     "/\xE1\x88\xB4",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/%E1%88%B4

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
    {"get-vanilla",
     "GET",
     "/",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-vanilla-empty-query-key",
     "GET",
     "/",
     "Param1=value1",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/
Param1=value1
host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
    {"get-vanilla-query",
     "GET",
     "/",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-vanilla-query-order-key",
     "GET",
     "/",
     "Param1=value2&Param1=Value1",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/
Param1=Value1&Param1=value2
host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
    {"get-vanilla-query-order-key-case",
     "GET",
     "/",
     "Param2=value2&Param1=value1",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/
Param1=value1&Param2=value2
host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
    {"get-vanilla-query-order-value",
     "GET",
     "/",
     "Param1=value2&Param1=value1",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/
Param1=value1&Param1=value2
host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
    {"get-vanilla-query-unreserved",
     "GET",
     "/",
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
     "=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/
-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz
host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
    {"get-vanilla-utf8-query",
     "GET",
     "/",
     "\xE1\x88\xB4=bar",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/
%E1%88%B4=bar
host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
    {"normalize-path/get-relative",
     "GET",
     "/example/..",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"normalize-path/get-relative-relative",
     "GET",
     "/example1/example2/../..",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"normalize-path/get-slash",
     "GET",
     "//",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"normalize-path/get-slash-dot-slash",
     "GET",
     "/./",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"normalize-path/get-slash-pointless-dot",
     "GET",
     "/./example",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/example

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"},
    {"normalize-path/get-slashes",
     "GET",
     "//example//",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/example/

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"},
    {"normalize-path/get-space",
     "GET",
     "/example space/",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(GET
/example%20space/

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
    {"post-header-key-case",
     "POST",
     "/",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(POST
/

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-header-key-sort",
     "POST",
     "/",
     "",
     {{"Host", "example.amazonaws.com"},
      {"My-Header1", "value1"},
      {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(POST
/

host:example.amazonaws.com
my-header1:value1
x-amz-date:20150830T123600Z

host;my-header1;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature="
     "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
    {"post-header-value-case",
     "POST",
     "/",
     "",
     {{"Host", "example.amazonaws.com"},
      {"My-Header1", "VALUE1"},
      {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(POST
/

host:example.amazonaws.com
my-header1:VALUE1
x-amz-date:20150830T123600Z

host;my-header1;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature="
     "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
    {"post-sts-token/post-sts-header-after",
     "POST",
     "/",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(POST
/

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-sts-token/post-sts-header-before",
     "POST",
     "/",
     "",
     {{"Host", "example.amazonaws.com"},
      {"X-Amz-Date", "20150830T123600Z"},
      {"X-Amz-Security-Token", suite_token}},
     "",
     R"(POST
/

host:example.amazonaws.com
x-amz-date:20150830T123600Z
x-amz-security-token:)"
       + std::string{suite_token} + R"(

host;x-amz-date;x-amz-security-token
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, "
     "Signature="
     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
    {"post-vanilla",
     "POST",
     "/",
     "",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(POST
/

host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-vanilla-empty-query-value",
     "POST",
     "/",
     "Param1=value1",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(POST
/
Param1=value1
host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
    {"post-vanilla-query",
     "POST",
     "/",
     "Param1=value1",
     {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}},
     "",
     R"(POST
/
Param1=value1
host:example.amazonaws.com
x-amz-date:20150830T123600Z

host;x-amz-date
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=host;x-amz-date, Signature="
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
    // The suite's .sts and .authz for this case were made from another
    // request (see the next case): only the .creq belongs to the .req.
    {"post-x-www-form-urlencoded",
     "POST",
     "/",
     "",
     {{"Content-Type", "application/x-www-form-urlencoded"},
      {"Host", "example.amazonaws.com"},
      {"X-Amz-Date", "20150830T123600Z"},
      {"Content-Length", "13"}},
     "Param1=value1",
     R"(POST
/

content-length:13
content-type:application/x-www-form-urlencoded
host:example.amazonaws.com
x-amz-date:20150830T123600Z

content-length;content-type;host;x-amz-date
9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e)",
     "",
     ""},
    // The request the suite's .sts and .authz sign: no Content-Length (the
    // canonical request is derived: its SHA-256 is the one in the .sts).
    {"post-x-www-form-urlencoded (signed)",
     "POST",
     "/",
     "",
     {{"Content-Type", "application/x-www-form-urlencoded"},
      {"Host", "example.amazonaws.com"},
      {"X-Amz-Date", "20150830T123600Z"}},
     "Param1=value1",
     R"(POST
/

content-type:application/x-www-form-urlencoded
host:example.amazonaws.com
x-amz-date:20150830T123600Z

content-type;host;x-amz-date
9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
    // The suite's .sts and .authz for this case were made from another
    // request (see the next case): only the .creq belongs to the .req.
    {"post-x-www-form-urlencoded-parameters",
     "POST",
     "/",
     "",
     {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
      {"Host", "example.amazonaws.com"},
      {"X-Amz-Date", "20150830T123600Z"},
      {"Content-Length", "13"}},
     "Param1=value1",
     R"(POST
/

content-length:13
content-type:application/x-www-form-urlencoded; charset=utf-8
host:example.amazonaws.com
x-amz-date:20150830T123600Z

content-length;content-type;host;x-amz-date
9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e)",
     "",
     ""},
    // The request the suite's .sts signs: no Content-Length and
    // "charset=utf8" (the canonical request is derived: its SHA-256 is the
    // one in the .sts). The .authz file lists content-length among its
    // SignedHeaders but carries this signature; the Authorization of the
    // .sreq (below) is the consistent one.
    {"post-x-www-form-urlencoded-parameters (signed)",
     "POST",
     "/",
     "",
     {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"},
      {"Host", "example.amazonaws.com"},
      {"X-Amz-Date", "20150830T123600Z"}},
     "Param1=value1",
     R"(POST
/

content-type:application/x-www-form-urlencoded; charset=utf8
host:example.amazonaws.com
x-amz-date:20150830T123600Z

content-type;host;x-amz-date
9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e)",
     R"(AWS4-HMAC-SHA256
20150830T123600Z
20150830/us-east-1/service/aws4_request
2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c)",
     "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
     "aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
     "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"},
  };
  return cases;
}

} // namespace

BOOST_AUTO_TEST_SUITE(sigv4)

BOOST_AUTO_TEST_CASE(aws_test_suite) {
  // 31 requests in 24 directories (normalize-path holds 7, post-sts-token 2),
  // plus the 2 requests the x-www-form-urlencoded cases really sign.
  BOOST_TEST(suite().size() == 33u);
  sig::credentials creds{suite_akid, suite_secret, ""};
  for (auto& c : suite()) {
    BOOST_TEST_CONTEXT(c.name) {
      sig::request req{c.method, c.path, c.query, c.headers,
                       heaven::sha256_hex(c.body)};
      auto creq = sig::canonical_request(req, true);
      BOOST_TEST(creq == c.creq);
      if (c.sts.empty())
        continue;
      BOOST_TEST(
        sig::string_to_sign(creq, suite_date, suite_region, suite_service)
        == c.sts);
      BOOST_TEST(sig::authorization(req, creds, suite_date, suite_region,
                                    suite_service, true)
                 == c.authz);
    }
  }
}

BOOST_AUTO_TEST_CASE(sha256_of_nothing) {
  BOOST_TEST(heaven::sha256_hex("")
             == "e3b0c44298fc1c149afbf4c8996fb924"
                "27ae41e4649b934ca495991b7852b855");
  BOOST_TEST(heaven::sha256_hex("abc")
             == "ba7816bf8f01cfea414140de5dae2223"
                "b00361a396177a9cb410ff61f20015ad");
}

BOOST_AUTO_TEST_CASE(uri_encoding) {
  using heaven::percent_encode;
  const std::string unreserved
    = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  BOOST_TEST(percent_encode(unreserved, false) == unreserved);
  BOOST_TEST(percent_encode("my app/v 1.zip", true) == "my%20app/v%201.zip");
  BOOST_TEST(percent_encode("my app/v 1.zip", false) == "my%20app%2Fv%201.zip");
  BOOST_TEST(percent_encode("a+b=c&d*e%f", false) == "a%2Bb%3Dc%26d%2Ae%25f");
  BOOST_TEST(percent_encode("\xE1\x88\xB4", true) == "%E1%88%B4");
  BOOST_TEST(percent_encode(std::string{"\0\xff", 2}, true) == "%00%FF");
  BOOST_TEST(percent_encode("", true) == "");
}

BOOST_AUTO_TEST_CASE(amz_dates) {
  using sig::amz_date;
  BOOST_TEST(amz_date(system_clock::time_point{}) == "19700101T000000Z");
  auto t = sys_days{year{2015} / 8 / 30} + 12h + 36min;
  BOOST_TEST(amz_date(t) == "20150830T123600Z");
  // Fractions of a second are cut, never rounded up.
  BOOST_TEST(amz_date(t + 999ms) == "20150830T123600Z");
  BOOST_TEST(amz_date(sys_days{year{2024} / 12 / 31} + 23h + 59min + 59s)
             == "20241231T235959Z");
}

BOOST_AUTO_TEST_CASE(s3_paths_are_not_normalized) {
  sig::request req{
    "GET", "/bucket//a/./b/../c", "", {{"Host", "h"}}, heaven::sha256_hex("")};
  auto creq = sig::canonical_request(req, false);
  BOOST_TEST(creq.substr(0, creq.find('\n', 4)) == "GET\n/bucket//a/./b/../c");
  creq = sig::canonical_request(req, true);
  BOOST_TEST(creq.substr(0, creq.find('\n', 4)) == "GET\n/bucket/a/c");
}

BOOST_AUTO_TEST_CASE(canonical_query_decodes_then_encodes) {
  sig::request req{"GET",
                   "/",
                   "b=x%2Fy&a&c=d e&a=%41",
                   {{"Host", "h"}},
                   heaven::sha256_hex("")};
  auto creq = sig::canonical_request(req, true);
  BOOST_TEST(creq.substr(0, creq.find("\nhost"))
             == "GET\n/\na=&a=A&b=x%2Fy&c=d%20e");
}

namespace {

// -- sign() ------------------------------------------------------------------

constexpr auto akid = "AKIAHEAVENTEST000001";
constexpr auto secret = "heavenSecretKey/Never+Shown0123456789abcd";
constexpr auto token = "FwoGZXIvYXdzEHeavenSessionToken//ABC+def==";

/// 2024-01-02T03:04:05Z.
system_clock::time_point when() {
  return sys_days{year{2024} / 1 / 2} + 3h + 4min + 5s;
}

/// The value of header `name` (compared case-insensitively), "" if absent;
/// fails the test if it occurs more than once.
std::string header(const http_request& req, std::string_view name) {
  auto same = [&](auto& kvp) {
    return kvp.first.size() == name.size()
           && std::equal(name.begin(), name.end(), kvp.first.begin(),
                         [](char a, char b) {
                           return std::tolower(a) == std::tolower(b);
                         });
  };
  auto n = std::count_if(req.headers.begin(), req.headers.end(), same);
  BOOST_TEST(n <= 1, "header " << name << " occurs " << n << " times");
  auto i = std::find_if(req.headers.begin(), req.headers.end(), same);
  return i == req.headers.end() ? std::string{} : i->second;
}

void check_no_secret(const http_request& req) {
  for (auto& [name, value] : req.headers) {
    BOOST_TEST(name.find(secret) == std::string::npos);
    BOOST_TEST(value.find(secret) == std::string::npos);
  }
}

http_request s3_put() {
  http_request req;
  req.method = "PUT";
  req.url = "http://127.0.0.1:9000/bucket/app-abc.zip";
  req.headers = {{"Content-Type", "application/zip"}};
  req.body = std::string{"PK\x03\x04zip bytes\0\xff", 16};
  return req;
}

http_request eb_post() {
  http_request req;
  req.method = "POST";
  req.url = "https://elasticbeanstalk.eu-west-1.amazonaws.com/";
  req.headers = {
    {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
  req.body = "Action=DescribeEnvironments&ApplicationName=app"
             "&EnvironmentNames.member.1=production&Version=2010-12-01";
  return req;
}

} // namespace

BOOST_AUTO_TEST_CASE(sign_s3_put) {
  auto req = s3_put();
  sig::sign(req, {akid, secret, ""}, "us-east-1", "s3", when());
  BOOST_TEST(req.method == "PUT");
  BOOST_TEST(req.url == "http://127.0.0.1:9000/bucket/app-abc.zip");
  BOOST_TEST(req.headers.size() == 5u);
  BOOST_TEST(header(req, "Content-Type") == "application/zip");
  BOOST_TEST(header(req, "Host") == "127.0.0.1:9000");
  BOOST_TEST(header(req, "X-Amz-Date") == "20240102T030405Z");
  BOOST_TEST(header(req, "x-amz-content-sha256")
             == heaven::sha256_hex(req.body));
  BOOST_TEST(header(req, "X-Amz-Security-Token") == "");
  // The signature over exactly these headers, path and body.
  sig::request expected{
    "PUT",
    "/bucket/app-abc.zip",
    "",
    {{"Content-Type", "application/zip"},
     {"Host", "127.0.0.1:9000"},
     {"X-Amz-Date", "20240102T030405Z"},
     {"x-amz-content-sha256", heaven::sha256_hex(req.body)}},
    heaven::sha256_hex(req.body)};
  auto authz = header(req, "Authorization");
  BOOST_TEST(authz
             == sig::authorization(expected, {akid, secret, ""},
                                   "20240102T030405Z", "us-east-1", "s3",
                                   false));
  BOOST_TEST(authz.rfind("AWS4-HMAC-SHA256 Credential=AKIAHEAVENTEST000001/"
                         "20240102/us-east-1/s3/aws4_request, SignedHeaders="
                         "content-type;host;x-amz-content-sha256;x-amz-date, "
                         "Signature=",
                         0)
             == 0u);
  BOOST_TEST(authz.size() == authz.rfind('=') + 1 + 64);
  check_no_secret(req);
}

BOOST_AUTO_TEST_CASE(sign_beanstalk_post) {
  auto req = eb_post();
  auto body = req.body;
  sig::sign(req, {akid, secret, ""}, "eu-west-1", "elasticbeanstalk", when());
  BOOST_TEST(req.body == body);
  BOOST_TEST(req.headers.size() == 4u);
  BOOST_TEST(header(req, "Host") == "elasticbeanstalk.eu-west-1.amazonaws.com");
  BOOST_TEST(header(req, "X-Amz-Date") == "20240102T030405Z");
  BOOST_TEST(header(req, "x-amz-content-sha256") == "");
  auto authz = header(req, "Authorization");
  BOOST_TEST(authz.rfind("AWS4-HMAC-SHA256 Credential=AKIAHEAVENTEST000001/"
                         "20240102/eu-west-1/elasticbeanstalk/aws4_request, "
                         "SignedHeaders=content-type;host;x-amz-date, "
                         "Signature=",
                         0)
             == 0u);
  check_no_secret(req);
}

BOOST_AUTO_TEST_CASE(sign_with_session_token) {
  auto req = eb_post();
  sig::sign(req, {akid, secret, token}, "eu-west-1", "elasticbeanstalk",
            when());
  BOOST_TEST(header(req, "X-Amz-Security-Token") == token);
  BOOST_TEST(header(req, "Authorization")
               .find("SignedHeaders=content-type;host;x-amz-date;"
                     "x-amz-security-token, ")
             != std::string::npos);
  check_no_secret(req);
}

BOOST_AUTO_TEST_CASE(sign_host_ports) {
  auto host_of = [](std::string url) {
    http_request req;
    req.url = std::move(url);
    sig::sign(req, {akid, secret, ""}, "us-east-1", "s3", when());
    return header(req, "Host");
  };
  BOOST_TEST(host_of("https://b.s3.us-east-1.amazonaws.com/k")
             == "b.s3.us-east-1.amazonaws.com");
  BOOST_TEST(host_of("https://b.s3.amazonaws.com:443/k")
             == "b.s3.amazonaws.com");
  BOOST_TEST(host_of("http://localhost:80/k") == "localhost");
  BOOST_TEST(host_of("http://localhost:443/k") == "localhost:443");
  BOOST_TEST(host_of("https://localhost:8443") == "localhost:8443");
  BOOST_TEST(host_of("http://[::1]:9000/b") == "[::1]:9000");
  BOOST_TEST(host_of("http://[::1]/b") == "[::1]");
  http_request bad;
  bad.url = "ftp://example.com/x";
  BOOST_CHECK_THROW(sig::sign(bad, {akid, secret, ""}, "us-east-1", "s3",
                              when()),
                    std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(sign_replaces_headers_it_owns) {
  auto fresh = s3_put();
  sig::sign(fresh, {akid, secret, ""}, "us-east-1", "s3", when());
  auto req = s3_put();
  req.headers.emplace_back("host", "wrong.example.com");
  req.headers.emplace_back("AUTHORIZATION", "AWS4-HMAC-SHA256 stale");
  req.headers.emplace_back("x-amz-date", "20000101T000000Z");
  req.headers.emplace_back("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD");
  sig::sign(req, {akid, secret, ""}, "us-east-1", "s3", when());
  BOOST_TEST(req.headers.size() == 5u);
  BOOST_TEST(header(req, "Host") == "127.0.0.1:9000");
  BOOST_TEST(header(req, "Authorization") == header(fresh, "Authorization"));
  // Signing a signed request again (a retry) gives the same signature.
  sig::sign(req, {akid, secret, ""}, "us-east-1", "s3", when());
  BOOST_TEST(req.headers.size() == 5u);
  BOOST_TEST(header(req, "Authorization") == header(fresh, "Authorization"));
  // ...and a request signed at another second, another one.
  sig::sign(req, {akid, secret, ""}, "us-east-1", "s3", when() + 1s);
  BOOST_TEST(header(req, "Authorization") != header(fresh, "Authorization"));
}

BOOST_AUTO_TEST_CASE(sign_decodes_the_url_path_once) {
  http_request req;
  req.method = "PUT";
  req.url = "http://127.0.0.1:9000/bucket/my%20app/v%201.zip?x=1";
  sig::sign(req, {akid, secret, ""}, "us-east-1", "s3", when());
  sig::request expected{"PUT",
                        "/bucket/my app/v 1.zip",
                        "x=1",
                        {{"Host", "127.0.0.1:9000"},
                         {"X-Amz-Date", "20240102T030405Z"},
                         {"x-amz-content-sha256", heaven::sha256_hex("")}},
                        heaven::sha256_hex("")};
  BOOST_TEST(header(req, "Authorization")
             == sig::authorization(expected, {akid, secret, ""},
                                   "20240102T030405Z", "us-east-1", "s3",
                                   false));
}

// -- botocore cross-check ----------------------------------------------------

namespace {

/// Signs the request read from stdin (JSON) with botocore at the given
/// time and prints the request's headers afterwards, one "Name: value" a
/// line.
constexpr auto botocore_script = R"PY(
import binascii, datetime, json, sys
from unittest import mock
try:
    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:
    sys.exit("botocore is missing (%s): run ./setup.sh" % e)

d = json.load(sys.stdin)
fixed = datetime.datetime.strptime(d["amz_date"], "%Y%m%dT%H%M%SZ")


class Frozen(datetime.datetime):
    # botocore 1.29 asks utcnow(), later ones now(timezone.utc).
    @classmethod
    def utcnow(cls):
        return fixed

    @classmethod
    def now(cls, tz=None):
        return fixed if tz is None else fixed.replace(tzinfo=tz)


creds = Credentials(d["akid"], d["secret"], d["token"] or None)
req = AWSRequest(method=d["method"], url=d["url"], headers=d["headers"],
                 data=binascii.unhexlify(d["body_hex"]))
auth = S3SigV4Auth if d["service"] == "s3" else SigV4Auth
with mock.patch("datetime.datetime", Frozen):
    auth(creds, d["service"], d["region"]).add_auth(req)
for name, value in req.headers.items():
    print("%s: %s" % (name, value))
)PY";

std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + '"';
}

std::string hex(std::string_view s) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += digits[c >> 4];
    out += digits[c & 0x0f];
  }
  return out;
}

/// What botocore gets on stdin for `req`.
std::string botocore_input(const http_request& req,
                           const sig::credentials& creds,
                           std::string_view region, std::string_view service,
                           std::string_view amz_date) {
  std::string headers;
  for (auto& [name, value] : req.headers) {
    headers += headers.empty() ? "{" : ", ";
    headers += json_string(name) + ": " + json_string(value);
  }
  headers += headers.empty() ? "{}" : "}";
  return "{\"method\": " + json_string(req.method)
         + ", \"url\": " + json_string(req.url) + ", \"headers\": " + headers
         + ", \"body_hex\": " + json_string(hex(req.body))
         + ", \"akid\": " + json_string(creds.access_key_id)
         + ", \"secret\": " + json_string(creds.secret_access_key)
         + ", \"token\": " + json_string(creds.session_token) + ", \"region\": "
         + json_string(region) + ", \"service\": " + json_string(service)
         + ", \"amz_date\": " + json_string(amz_date) + "}";
}

/// The interpreter setup.sh provides python3-botocore for; any python3 on
/// PATH otherwise.
std::string python() {
  return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

struct run_result {
  /// Why the program could not be run, "" if it ran.
  std::string error;
  /// Its wait status.
  int status = 0;
  std::string out;
};

/// Runs `python3 -c script`, feeding it `input` on stdin.
run_result run_python(const std::string& script, const std::string& input) {
  run_result res;
  // A child that dies early must fail the test, not kill it with SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  int in[2];
  int out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
    res.error = std::strerror(errno);
    return res;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  auto exe = python();
  std::vector<char*> argv{exe.data(), const_cast<char*>("-c"),
                          const_cast<char*>(script.c_str()), nullptr};
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, exe.c_str(), &actions, nullptr, argv.data(),
                        environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    res.error = exe + ": " + std::strerror(rc);
    close(in[1]);
    close(out[0]);
    return res;
  }
  // The input is far smaller than a pipe's buffer: write it all, then read.
  for (std::size_t done = 0; done < input.size();) {
    auto n = write(in[1], input.data() + done, input.size() - done);
    if (n <= 0)
      break;
    done += static_cast<std::size_t>(n);
  }
  close(in[1]);
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof(buf))) > 0;)
    res.out.append(buf, static_cast<std::size_t>(n));
  close(out[0]);
  waitpid(pid, &res.status, 0);
  return res;
}

/// `req` signed by botocore: its headers after signing.
string_pairs botocore_sign(const http_request& req,
                           const sig::credentials& creds,
                           std::string_view region, std::string_view service,
                           std::string_view amz_date) {
  auto res = run_python(botocore_script,
                        botocore_input(req, creds, region, service, amz_date));
  BOOST_REQUIRE_MESSAGE(res.error.empty(), "cannot run python3 ("
                                             << res.error
                                             << "): run ./setup.sh");
  BOOST_REQUIRE_MESSAGE(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0,
                        "python3 with botocore failed (see its stderr): "
                        "run ./setup.sh to install python3-botocore");
  string_pairs headers;
  std::size_t start = 0;
  for (auto end = res.out.find('\n'); end != std::string::npos;
       start = end + 1, end = res.out.find('\n', start)) {
    auto line = res.out.substr(start, end - start);
    auto colon = line.find(": ");
    BOOST_REQUIRE(colon != std::string::npos);
    headers.emplace_back(line.substr(0, colon), line.substr(colon + 2));
  }
  return headers;
}

void cross_check(const http_request& original, const sig::credentials& creds,
                 std::string_view region, std::string_view service) {
  auto boto = botocore_sign(original, creds, region, service,
                            sig::amz_date(when()));
  auto ours = original;
  sig::sign(ours, creds, region, service, when());
  BOOST_TEST_CONTEXT(original.method << " " << original.url) {
    BOOST_TEST(header(ours, "Authorization") != "");
    // botocore leaves Host to the HTTP layer; every other header matches.
    BOOST_TEST(ours.headers.size() == boto.size() + 1);
    for (auto& [name, value] : boto)
      BOOST_TEST(header(ours, name) == value, name << " differs");
    BOOST_TEST(header(ours, "Host") != "");
  }
}

} // namespace

BOOST_AUTO_TEST_CASE(botocore_agrees) {
  std::string binary;
  for (int i = 0; i < 512; ++i)
    binary += static_cast<char>((i * 37) & 0xff);
  http_request put;
  put.method = "PUT";
  put.url = "http://127.0.0.1:9000/bucket/my%20app/v%201.zip";
  put.headers = {{"Content-Type", "application/zip"}};
  put.body = binary;
  cross_check(put, {akid, secret, ""}, "us-east-1", "s3");

  http_request head;
  head.method = "HEAD";
  head.url = "https://heaven-builds.s3.eu-west-1.amazonaws.com/";
  cross_check(head, {akid, secret, ""}, "eu-west-1", "s3");

  http_request list;
  list.method = "GET";
  list.url = "http://127.0.0.1:9000/bucket?prefix=my%20app%2F&list-type=2"
             "&delimiter=%2F";
  cross_check(list, {akid, secret, token}, "us-east-1", "s3");

  cross_check(eb_post(), {akid, secret, ""}, "eu-west-1", "elasticbeanstalk");
  cross_check(eb_post(), {akid, secret, token}, "eu-west-1",
              "elasticbeanstalk");
}

BOOST_AUTO_TEST_SUITE_END()
