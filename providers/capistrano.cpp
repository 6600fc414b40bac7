#include "providers/capistrano.hpp"
