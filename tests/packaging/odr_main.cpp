// Links two translation units that each include every pods header: a non-inline definition
// at namespace scope in any header would be defined twice and fail the link.
int odr_a();
int odr_b();
int main() {
  return odr_a() + odr_b() == 2 ? 0 : 1;
}
