#include "actors/ssh.hpp"
