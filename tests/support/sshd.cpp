#include "tests/support/sshd.hpp"
