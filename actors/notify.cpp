#include "actors/notify.hpp"
