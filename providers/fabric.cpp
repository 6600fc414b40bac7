#include "providers/fabric.hpp"
